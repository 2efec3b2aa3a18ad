// Resuming a follower (SSE logs or raw output) after a dropped connection: which failures are worth another try,
// how long to wait before it, and when to give up.
import { BerthApiError, UNREACHABLE, isAbortError } from "./errors.js";

/** How a follower reconnects after a dropped connection. */
export interface ReconnectOptions {
  /** Consecutive failed (re)connections tolerated before giving up. @defaultValue 8 */
  maxRetries?: number;
  /** First reconnection delay; doubles per consecutive failure. @defaultValue 250 */
  retryDelayMs?: number;
  /** Largest reconnection delay. @defaultValue 5000 */
  maxRetryDelayMs?: number;
  /** Called before each reconnection, with the attempt number (from 1), what went wrong and the wait before it. */
  onReconnect?: (attempt: number, error: unknown, delayMs: number) => void;
}

/** A connection that stayed up this long counts as healthy, even if nothing arrived (an idle task). */
const HEALTHY_CONNECTION_MS = 15_000;

/** Retrying helps when nothing answered, the server is overloaded or down for a moment; not for 4xx. */
export const isRetriable = (err: unknown): boolean =>
  !(err instanceof BerthApiError) || err.code === UNREACHABLE || err.status === 429 || err.status >= 500;

/**
 * One follower's connections: the signal they are opened with (aborted when the consumer's is, or on `close`), and
 * its failed connections in a row, with the wait between them.
 */
export class Reconnects {
  #failures = 0;
  readonly #controller = new AbortController();
  readonly #onAbort: () => void;

  constructor(
    /** What is followed, for the message when giving up: `log stream`, `output stream`. */
    private readonly what: string,
    private readonly taskId: string,
    private readonly opts: ReconnectOptions & { signal?: AbortSignal },
  ) {
    this.#onAbort = () => this.#controller.abort(opts.signal?.reason);
    if (opts.signal?.aborted) this.#onAbort();
    else opts.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** For every connection and wait of the follower. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The follower is done: anything still open with `signal` is let go. */
  close(): void {
    this.opts.signal?.removeEventListener("abort", this.#onAbort);
    this.#controller.abort();
  }

  /**
   * Opening or reading a connection threw `err`: true when the follower ends quietly (its consumer aborted); throws
   * `err` when no retry can help (a 4xx other than 429, a garbled stream); false to try again.
   */
  endsOn(err: unknown): boolean {
    if (this.signal.aborted && isAbortError(err)) return true;
    if (!isRetriable(err)) throw err;
    return false;
  }

  /** Something arrived: the next failure is the first in a row again. */
  progressed(): void {
    this.#failures = 0;
  }

  /**
   * After a connection opened at `openedAt` ended with `problem`: waits before the next one (`serverRetryMs`, the
   * server's SSE `retry:`, replaces the first delay). False when aborted meanwhile (the follower ends quietly);
   * throws once `maxRetries` failures in a row are spent.
   */
  async next(problem: unknown, openedAt: number, serverRetryMs?: number): Promise<boolean> {
    const { maxRetries = 8, retryDelayMs = 250, maxRetryDelayMs = 5000 } = this.opts;
    if (this.signal.aborted) return false;
    if (Date.now() - openedAt >= HEALTHY_CONNECTION_MS) this.#failures = 0;
    this.#failures += 1;
    if (this.#failures > maxRetries) {
      if (problem instanceof BerthApiError) throw problem;
      throw new BerthApiError(
        0,
        UNREACHABLE,
        `Lost the ${this.what} of task "${this.taskId}" and could not resume it after ${maxRetries} retries: ${String((problem as Error)?.message ?? problem)}.`,
        { cause: problem },
      );
    }
    const delay = Math.min(maxRetryDelayMs, (serverRetryMs ?? retryDelayMs) * 2 ** (this.#failures - 1));
    this.opts.onReconnect?.(this.#failures, problem, delay);
    try {
      await sleep(delay, this.signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** Waits `ms`, or rejects when `signal` aborts. Plain timers, so the followers also run in a browser. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", done);
      resolve();
    }, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
