// The one error type of the client SDK: what the server answered, or why it could not be asked.
import type { ErrorBody } from "../contract/types.js";

/** Code of a {@link BerthApiError} raised when the server could not be reached (status 0). */
export const UNREACHABLE = "unreachable";

/**
 * An error answered by the berth API (`{"error": {"code", "message"}}`), or raised by the client itself.
 *
 * `status` is the HTTP status; it is `0` when no answer was received (`code` {@link UNREACHABLE}) or when the
 * client refused before asking (`invalid_input`), gave up (`wait_timeout`) or found a bad download (`checksum_mismatch`).
 */
export class BerthApiError extends Error {
  override readonly name = "BerthApiError";
  /** HTTP status, or 0 when no answer was received. */
  readonly status: number;
  /** The wire code (`snake_case`), e.g. `invalid_input`, `not_found`, `unreachable`. */
  readonly code: string;
  /** From `Retry-After` (429, 503), in seconds. */
  readonly retryAfterSeconds?: number;

  constructor(status: number, code: string, message: string, options: { retryAfterSeconds?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = status;
    this.code = code;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** True for a {@link BerthApiError}. */
export const isBerthApiError = (value: unknown): value is BerthApiError => value instanceof BerthApiError;

/** Builds the error for a non-2xx response from its wire body; falls back to the status line if the body is not one. */
export async function errorFromResponse(res: Response, what: string): Promise<BerthApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The body could not be read; the status alone still says what happened.
  }
  let code = `http_${res.status}`;
  let message = `${what} answered ${res.status} ${res.statusText}`.trim() + ".";
  try {
    const body = JSON.parse(text) as Partial<ErrorBody>;
    if (body.error && typeof body.error.code === "string" && typeof body.error.message === "string") {
      code = body.error.code;
      message = body.error.message;
    }
  } catch {
    // Not JSON (a proxy's error page, say): keep the status line.
  }
  const retryAfterSeconds = parseRetryAfter(res.headers.get("retry-after"));
  return new BerthApiError(res.status, code, message, retryAfterSeconds === undefined ? {} : { retryAfterSeconds });
}

/** The error for a request that got no answer: names the URL and the underlying cause (ECONNREFUSED, ...). */
export function unreachableError(url: string, cause: unknown): BerthApiError {
  return new BerthApiError(0, UNREACHABLE, `Cannot reach the berth server at ${url}: ${describeCause(cause)}.`, { cause });
}

/** True when `err` is an abort (the caller's signal), which must not be reported as "unreachable". */
export const isAbortError = (err: unknown): boolean => err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");

function describeCause(err: unknown): string {
  // undici reports "fetch failed" and keeps the useful part (ECONNREFUSED 127.0.0.1:1) in `cause`.
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error && e.cause instanceof Error; depth++) e = e.cause;
  if (e instanceof AggregateError && e.errors[0] instanceof Error) e = e.errors[0];
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === "string" && !e.message.includes(code) ? `${code} ${e.message}` : e.message || String(code ?? "error");
  }
  return String(err);
}

function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
