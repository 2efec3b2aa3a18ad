// The disk limit's watcher: measures a running task's workspace and reports the first measurement past the limit.
//
// The kernel caps every single file at the limit (the container's fsize ulimit); the total is what this watches.
// Walking the workspace costs a process and a pass over its entries, so it is not done every few milliseconds;
// instead the free space of the workspace's filesystem (one statfs, no process) is read every few milliseconds, and
// a drop that could have taken the workspace past its limit triggers a walk at once. Other writers on the same
// filesystem only make walks more frequent (bounded by a share of the time), never later. A walk also runs
// periodically, the sooner the faster the workspace grows, for what free space does not show (sparse files).
// A writer still gets past the limit by what it writes between two reads, one walk and the container's stop;
// SECURITY.md gives the measured figures.
import { statfs } from "node:fs/promises";
import type { Logger } from "pino";
import { measureWorkspace } from "../workspace/usage.js";

/** How often the filesystem's free space is read. */
const FREE_SPACE_INTERVAL_MS = 10;
/** Shortest and longest time between two periodic walks. */
const MIN_WALK_INTERVAL_MS = 100;
const MAX_WALK_INTERVAL_MS = 1000;
/** Growth assumed until a faster one is seen: about what one task writes through the page cache. */
const ASSUMED_BYTES_PER_SECOND = 1024 ** 3;
/** Walks may take at most this share of the time (a workspace of millions of entries is walked slowly). */
const MAX_DUTY = 0.25;

/** When to walk next, periodically: twice before the fastest growth seen could fill the room left. */
export function nextWalkInterval(opts: { limitBytes: number; bytes: number; peakBytesPerSecond: number }): number {
  const rate = Math.max(opts.peakBytesPerSecond, ASSUMED_BYTES_PER_SECOND);
  const untilFullMs = (Math.max(0, opts.limitBytes - opts.bytes) / rate) * 1000;
  return Math.min(MAX_WALK_INTERVAL_MS, Math.max(MIN_WALK_INTERVAL_MS, untilFullMs / 2));
}

/**
 * What the workspace may hold at most now, from the last walk and the free space then and now: everything the
 * filesystem lost since could be the workspace's.
 */
export const upperBound = (walk: { bytes: number; freeBytes: number }, freeBytesNow: number): number =>
  walk.bytes + Math.max(0, walk.freeBytes - freeBytesNow);

export interface DiskWatch {
  /** Stops watching; resolves once no walk is running. */
  stop(): Promise<void>;
}

/** What the workspace held, and the filesystem's free space, at one moment. */
export interface DiskBaseline {
  readonly bytes: number;
  readonly freeBytes: number;
}

/** The filesystem's free space at `dir` (blocks free, as the kernel counts them, reserved ones included). */
export async function freeBytesAt(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bfree * s.bsize;
}

/**
 * Watches `dir` until stopped; calls `onExceeded` once, with the bytes a walk found, when they pass `limitBytes`.
 * With a `baseline` taken before the container started (what its inputs hold), the first walk waits for its
 * period or for the free space to drop, so a task that ends in a moment is never walked while it runs.
 */
export function watchDisk(opts: {
  dir: string;
  limitBytes: number;
  log: Logger;
  onExceeded: (bytes: number) => void;
  baseline?: DiskBaseline | null;
}): DiskWatch {
  const controller = new AbortController();
  const freeBytes = () => freeBytesAt(opts.dir);
  const startedAt = Date.now();
  let last: { bytes: number; freeBytes: number; at: number } | null = opts.baseline ? { ...opts.baseline, at: startedAt } : null;
  let peak = 0;
  let nextWalkAt = opts.baseline ? startedAt + MIN_WALK_INTERVAL_MS : 0;
  let earliestWalkAt = 0;
  let busy: Promise<void> | null = null;
  let failures = 0;
  let done = false;

  const walk = async () => {
    const started = Date.now();
    const free = await freeBytes();
    const { bytes } = await measureWorkspace(opts.dir, controller.signal);
    const now = Date.now();
    if (last && now > last.at) peak = Math.max(peak, ((bytes - last.bytes) / (now - last.at)) * 1000);
    last = { bytes, freeBytes: free, at: now };
    earliestWalkAt = now + (now - started) / MAX_DUTY - (now - started);
    nextWalkAt = now + nextWalkInterval({ limitBytes: opts.limitBytes, bytes, peakBytesPerSecond: peak });
    if (bytes > opts.limitBytes) {
      done = true;
      opts.onExceeded(bytes);
    }
  };

  const tick = async () => {
    const now = Date.now();
    let due = !last || now >= nextWalkAt;
    if (!due && last && now >= earliestWalkAt) due = upperBound(last, await freeBytes()) > opts.limitBytes;
    if (due && !done && !controller.signal.aborted) await walk();
  };

  const timer = setInterval(() => {
    if (busy || done) return;
    busy = tick()
      .catch((err: unknown) => {
        if (controller.signal.aborted) return;
        // The workspace is berth's own directory: a walk that fails outright is worth one line, not one per tick.
        if (failures++ === 0) opts.log.warn({ err }, "could not measure the workspace; retrying");
        nextWalkAt = Date.now() + MAX_WALK_INTERVAL_MS;
      })
      .finally(() => {
        busy = null;
      });
  }, FREE_SPACE_INTERVAL_MS);
  timer.unref();

  return {
    async stop() {
      clearInterval(timer);
      controller.abort();
      await busy;
    },
  };
}
