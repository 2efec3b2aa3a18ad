// How a task ended, from what the engine reported and why berth stopped it (if it did): the status, exit code,
// reason and message the task's record gets. Pure, apart from logging a failure.
import type { Logger } from "pino";
import type { TaskStatus } from "../contract/types.js";
import { diskLimitBytes, type TaskSpec } from "../domain/task.js";
import { isBerthError, TaskFailure, type FailureReason } from "../errors.js";
import type { ContainerExit } from "./container-runtime.js";

/** Why berth itself stopped a container, if it did. */
export type StopCause = "timeout" | "canceled" | "worker_shutdown" | "worker_lost" | "disk_limit_exceeded";

/** What the workspace held: when the disk limit's watcher stopped the task, and when it had ended (null: unknown). */
export interface DiskSeen {
  readonly atStop: number | null;
  readonly atEnd: number | null;
}

/** How a task ended, as recorded. */
export interface Outcome {
  status: TaskStatus;
  exitCode: number | null;
  reason: FailureReason | "output_truncated" | null;
  message: string | null;
}

/** The outcome of a container that exited (or was stopped by berth for `cause`). */
export function classify(
  exit: ContainerExit,
  cause: StopCause | null,
  spec: TaskSpec,
  disk: DiskSeen = { atStop: null, atEnd: null },
): Outcome {
  if (cause === "timeout")
    return {
      status: "timed_out",
      exitCode: exit.exitCode,
      reason: "timeout",
      message: `Stopped after its timeout of ${spec.timeoutSeconds} s.`,
    };
  if (cause === "canceled") return { status: "canceled", exitCode: exit.exitCode, reason: "canceled", message: "Canceled while running." };
  if (cause === "disk_limit_exceeded") {
    const held = Math.max(disk.atStop ?? 0, disk.atEnd ?? 0);
    return { status: "failed", exitCode: exit.exitCode, reason: cause, message: `Stopped: ${diskMessage(held, spec)}` };
  }
  if (cause) return { status: "failed", exitCode: exit.exitCode, reason: cause, message: stopMessage(cause, spec) };
  // The engine's OOM flag, not exit code 137 alone: 137 is any SIGKILL. The engine can miss the kernel's OOM kill
  // (its event races with the exit); a SIGKILL while the task's own cgroup had reached its memory limit is that kill.
  if (exit.oomKilled || (exit.exitCode === 137 && (exit.usage?.peakMemoryBytes ?? 0) >= spec.limits.memoryMb * 1024 ** 2))
    return {
      status: "failed",
      exitCode: exit.exitCode,
      reason: "oom_killed",
      message: `Killed for exceeding its memory limit of ${spec.limits.memoryMb} MB.`,
    };
  // Past the limit at the end (a burst between two checks, or a file stopped by the kernel's per-file cap).
  if (disk.atEnd !== null && disk.atEnd > diskLimitBytes(spec.limits))
    return {
      status: "failed",
      exitCode: exit.exitCode,
      reason: "disk_limit_exceeded",
      message: `When it ended, ${diskMessage(disk.atEnd, spec)}`,
    };
  if (exit.exitCode === 0) return { status: "succeeded", exitCode: 0, reason: null, message: null };
  return { status: "failed", exitCode: exit.exitCode, reason: null, message: null };
}

/** MiB with enough digits that a size just past a small limit does not read as equal to it. */
const megabytes = (bytes: number) => (bytes / 1024 ** 2).toFixed(bytes < 100 * 1024 ** 2 ? 2 : 1);

const diskMessage = (bytes: number, spec: TaskSpec) =>
  `its workspace held ${megabytes(bytes)} MB, past its disk limit of ${spec.limits.diskMb} MB (limits.diskMb); no single file may be larger than the limit either.`;

/** The outcome of a task that failed before or while its container ran: a TaskFailure says why; anything else is berth's. */
export function failureOutcome(err: unknown, log: Logger): Outcome {
  if (err instanceof TaskFailure) {
    log.warn({ reason: err.reason, err }, "task failed before or while running");
    const status: TaskStatus = err.reason === "canceled" ? "canceled" : "failed";
    return { status, exitCode: null, reason: err.reason, message: err.message };
  }
  log.error({ err }, "task failed with an internal error");
  const dockerDown = isBerthError(err) && err.code === "dependency_unavailable";
  const reason: FailureReason = dockerDown || isEngineError(err) ? "docker_unavailable" : "internal_error";
  return { status: "failed", exitCode: null, reason, message: err instanceof Error ? err.message : String(err) };
}

const isEngineError = (err: unknown) =>
  err instanceof Error &&
  /ECONNREFUSED|ENOENT.*docker\.sock|socket hang up|ECONNRESET/.test(`${err.message} ${(err as { code?: string }).code ?? ""}`);

/** The failure reason of a task stopped before it started. */
export const stopReason = (signal: AbortSignal): FailureReason => (signal.reason as StopCause) ?? "canceled";

export function stopMessage(cause: StopCause, spec: TaskSpec): string {
  switch (cause) {
    case "timeout":
      return `Stopped after its timeout of ${spec.timeoutSeconds} s.`;
    case "canceled":
      return "Canceled.";
    case "worker_shutdown":
      return "The worker running it shut down before it finished; submit it again.";
    case "worker_lost":
      return "The worker running it lost track of it; it was stopped so it cannot run twice.";
    case "disk_limit_exceeded":
      return `Its workspace passed its disk limit of ${spec.limits.diskMb} MB (limits.diskMb).`;
  }
}
