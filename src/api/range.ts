// Which bytes of an archive a download asks for (RFC 9110 §14: Range, If-Range), read with range-parser. One range
// per response: a request for several that do not merge into one gets the whole archive.
import { combineRanges, parse } from "range-parser";

/** What to send: everything (200), one range (206), or nothing the request can have (416). */
export type RangeAnswer = { kind: "all" } | { kind: "range"; start: number; end: number } | { kind: "unsatisfiable" };

/**
 * Reads `Range` against a representation of `size` bytes whose strong ETag is `etag` (quoted). A Range that does
 * not parse, or an `If-Range` that does not match `etag` exactly (a date never does: there is no Last-Modified),
 * asks for everything.
 */
export function rangeOf(range: string | undefined, ifRange: string | undefined, etag: string, size: number): RangeAnswer {
  if (range === undefined) return { kind: "all" };
  if (ifRange !== undefined && ifRange.trim() !== etag) return { kind: "all" };
  const parsed = parse(size, range);
  // Bit 1: some element does not parse; such a header is ignored (RFC 9110 §14.2).
  if (parsed.type !== "bytes" || (parsed.code & 1) !== 0) return { kind: "all" };
  const ranges = combineRanges(parsed.ranges);
  if (ranges.length === 0) return { kind: "unsatisfiable" };
  if (ranges.length > 1) return { kind: "all" };
  const only = ranges[0] as { start: number; end: number };
  return { kind: "range", start: only.start, end: only.end };
}
