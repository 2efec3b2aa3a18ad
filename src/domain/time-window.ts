// Where a window of time starts, as a client writes it in `?since=`: an ISO-8601 time (`2026-11-23`,
// `2026-11-23T10:00:00Z`) or a span back from now (`90s`, `30m`, `24h`, `7d`).
import { BerthError } from "../errors.js";

const SPAN = /^(\d{1,9})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** ISO-8601 dates and times Date.parse reads the same everywhere (no locale formats). */
const ISO = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;

/** The start (ms) `raw` names, or `fallbackMs` when absent; a 400 naming `field` when it is neither form. */
export function parseSince(raw: string | undefined, now: number, fallbackMs: number, field = "since"): number {
  if (raw === undefined || raw === "") return fallbackMs;
  const span = SPAN.exec(raw);
  if (span) return now - Number(span[1]) * UNIT_MS[span[2] as keyof typeof UNIT_MS];
  const at = ISO.test(raw) ? Date.parse(raw) : Number.NaN;
  if (!Number.isFinite(at)) {
    throw new BerthError(
      "invalid_input",
      `Invalid ${field}: give an ISO-8601 time (2026-11-23T10:00:00Z) or a span back from now (30m, 24h, 7d), got ${JSON.stringify(raw.slice(0, 64))}.`,
      { field },
    );
  }
  return at;
}
