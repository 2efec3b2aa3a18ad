// Watching a started container until it exits: its timeout, a stop request (cancel, shutdown, lost lock) and its
// workspace's disk limit. Berth stops it for the first of these, and says which.
import type { Logger } from "pino";
import { diskLimitBytes, type TaskSpec } from "../domain/task.js";
import type { ContainerHandle } from "./container-runtime.js";
import { type DiskBaseline, watchDisk } from "./disk-watch.js";
import type { StopCause } from "./outcome.js";

export interface Supervised {
  readonly cause: StopCause | null;
  /** With `disk_limit_exceeded`: the workspace's size when the watcher saw it past the limit. */
  readonly diskBytes: number | null;
}

/** Waits for the container to exit, stopping it on timeout, when asked to stop, or when its workspace passes its limit. */
export async function superviseUntilExit(
  handle: ContainerHandle,
  opts: {
    spec: TaskSpec;
    workspacePath: string;
    graceSeconds: number;
    stop: AbortSignal;
    log: Logger;
    /** What the workspace held before the container started, when known without walking it. */
    diskBaseline: DiskBaseline | null;
  },
): Promise<Supervised> {
  const { spec, log } = opts;
  let cause: StopCause | null = null;
  let diskBytes: number | null = null;
  const stopWith = (c: StopCause, graceSeconds: number) => {
    if (cause) return;
    cause = c;
    log.info({ cause: c, graceSeconds }, "stopping container");
    (graceSeconds > 0 ? handle.stop(graceSeconds) : handle.kill()).catch((err: unknown) =>
      log.warn({ err }, "stop failed; the container will be force-removed"),
    );
  };
  const timer = setTimeout(() => stopWith("timeout", opts.graceSeconds), spec.timeoutSeconds * 1000);
  const onAbort = () => stopWith((opts.stop.reason as StopCause) ?? "canceled", opts.graceSeconds);
  if (opts.stop.aborted) onAbort();
  else opts.stop.addEventListener("abort", onAbort, { once: true });
  // Past its disk limit a task gets no grace period: every moment it keeps writing goes past the limit.
  const disk = watchDisk({
    dir: opts.workspacePath,
    limitBytes: diskLimitBytes(spec.limits),
    baseline: opts.diskBaseline,
    log,
    onExceeded: (bytes) => {
      diskBytes ??= bytes;
      stopWith("disk_limit_exceeded", 0);
    },
  });
  try {
    await handle.exitConfirmed.catch(() => undefined);
  } finally {
    clearTimeout(timer);
    opts.stop.removeEventListener("abort", onAbort);
    await disk.stop();
  }
  return { cause, diskBytes };
}
