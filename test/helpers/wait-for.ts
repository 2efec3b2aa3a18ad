// Poll, never sleep a fixed time; on timeout say what was awaited and what was last seen.
import { setTimeout as sleep } from "node:timers/promises";

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 30_000, intervalMs = 100 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}; last value: ${JSON.stringify(value)?.slice(0, 2000)}`);
    }
    await sleep(intervalMs);
  }
}

/**
 * `promise`, or a rejection naming what did not happen if it has not settled within `deadlineMs`. For "it happens
 * rather than hangs": the deadline is generous, a bound on hanging, never a measure of speed.
 */
export async function within<T>(promise: Promise<T>, deadlineMs: number, what: string): Promise<T> {
  const timer = new AbortController();
  const deadline = sleep(deadlineMs, undefined, { signal: timer.signal }).then(
    () => Promise.reject(new Error(`${what} did not happen within ${deadlineMs} ms`)),
    () => new Promise<never>(() => undefined), // cancelled: the promise settled first
  );
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    timer.abort();
  }
}
