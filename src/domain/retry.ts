// Retrying an operation on a fixed budget: how many attempts, and how long to wait before each. The waits are
// timers that do not keep the process alive (unref), so a retry never holds up an exit.

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  readonly attempts: number;
  /** How long to wait after attempt `failed` (1, 2, …) failed, before the next one (ms). */
  readonly delayMs: (failed: number) => number;
  /** How long to wait before the first attempt (ms). Default 0. */
  readonly firstDelayMs?: number;
}

/**
 * Runs `op` until it resolves or `policy.attempts` attempts have failed; then rejects with the last error.
 * `onFailure` is told of each failed attempt (to log it), the last one included. Once `giveUp` aborts, no further
 * attempt is made: a wait in progress ends and the last error is thrown.
 */
export async function retry<T>(
  policy: RetryPolicy,
  op: (attempt: number) => Promise<T>,
  onFailure?: (err: unknown, attempt: number) => void,
  giveUp?: AbortSignal,
): Promise<T> {
  if (policy.firstDelayMs) await sleep(policy.firstDelayMs, giveUp);
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      onFailure?.(err, attempt);
      if (attempt >= policy.attempts || giveUp?.aborted) throw err;
      await sleep(policy.delayMs(attempt), giveUp);
      if (giveUp?.aborted) throw err;
    }
  }
}

/** Waits `ms`, or less if `signal` aborts. */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal?.addEventListener("abort", done, { once: true });
  });
