// Closing BullMQ's workers and queues within a bound: their close() waits for Redis, and never settles while it is
// down. Whatever was not closed is left in Redis (a job's lock expires; another worker takes it up again).
import { setTimeout as delay } from "node:timers/promises";

/** Closes `closable`, waiting at most `ms`: true once it closed, false if it had not by then (or failed). */
export async function closeWithin(closable: { close(): Promise<void> }, ms: number): Promise<boolean> {
  const timer = new AbortController();
  const closed = closable.close().then(
    () => true,
    () => false,
  );
  const gaveUp = delay(ms, false, { signal: timer.signal, ref: false }).catch(() => false);
  try {
    return await Promise.race([closed, gaveUp]);
  } finally {
    timer.abort();
  }
}
