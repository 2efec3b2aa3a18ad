// The port between the task runner and a container engine. No dockerode types cross this line.
import type { TaskUsage } from "../contract/types.js";

export interface ContainerSpec {
  /** Unique, derived from the task id, so a second run of the same task collides instead of running twice. */
  readonly name: string;
  readonly image: string;
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** Absolute host path; mounted read-write at /workspace and used as the working directory. */
  readonly workspacePath: string;
  /** "uid:gid"; never root. */
  readonly user: string;
  readonly network: "none" | "bridge";
  readonly limits: { readonly memoryBytes: number; readonly nanoCpus: number; readonly pids: number };
  /** Largest size any one file may reach (the fsize ulimit: the kernel refuses to go further). */
  readonly maxFileBytes: number;
  readonly tmpfsBytes: number;
  /** Docker runtime ("" for the engine default). */
  readonly runtime: string;
  /** berth.* labels; the sweep finds orphans by them. */
  readonly labels: Readonly<Record<string, string>>;
  /** Volumes mounted read-write (the tenant's shared caches), each at its target path. */
  readonly volumes?: readonly { readonly volume: string; readonly target: string }[];
}

/** A volume whose data is a directory on the engine's host (berth's shared caches). */
export interface VolumeSpec {
  readonly name: string;
  /** Absolute host path of the directory that holds its data. */
  readonly directory: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** What a container's processes used in all, from the kernel's accounting. */
export type ResourceUsage = TaskUsage;

export interface ContainerExit {
  readonly exitCode: number;
  /** The engine saw the kernel OOM killer act in the container's cgroup. */
  readonly oomKilled: boolean;
  /** What its processes used; null or absent where the engine's accounting cannot be read from here. */
  readonly usage?: ResourceUsage | null;
}

export type OutputHandler = (stream: "stdout" | "stderr", chunk: Buffer) => void;

export interface ContainerHandle {
  readonly id: string;
  /**
   * Resolves with the exit code once the engine has reported that the container exited: then none of its
   * processes is left (its PID namespace is gone), so nothing it ran can change the workspace any more.
   * Rejects when the exit cannot be confirmed (engine unreachable or restarting).
   */
  readonly exitConfirmed: Promise<number>;
  /** The exit as the engine recorded it (exit code and OOM flag), read after `exitConfirmed`. */
  readonly exited: Promise<ContainerExit>;
  /** Resolves when the output stream has ended (all output delivered to the handler). */
  readonly outputEnded: Promise<void>;
  /** SIGTERM, then SIGKILL after `graceSeconds`. Succeeds if it has already stopped. */
  stop(graceSeconds: number): Promise<void>;
  /** SIGKILL at once. Succeeds if it has already stopped. */
  kill(): Promise<void>;
  /** Succeeds if it is already gone. */
  remove(): Promise<void>;
}

/**
 * A started container whose command is the warm pool's waiter (runner/waiter.ts): it waits for the script that makes
 * it a task's container.
 */
export interface WaitingContainer {
  readonly id: string;
  /** The container's environment as the engine set it up (the image's, and the spec's). */
  readonly env: readonly string[];
  /** Settles when the container exits (or its exit cannot be confirmed); a waiter exits only once it has run. */
  readonly exitConfirmed: Promise<number>;
  /** Whether it printed anything before {@link begin}: the waiter prints nothing, so such a container is not used. */
  readonly spoiled: boolean;
  /** Renames the container (rejects with a 409 status when another container has the name). */
  rename(name: string): Promise<void>;
  /**
   * Writes `input` to its stdin and closes it; its output goes to `onOutput` from now on. Rejects if the input
   * could not be written.
   */
  begin(input: Buffer, onOutput: OutputHandler): Promise<ContainerHandle>;
  /** Force-removes it; succeeds if it is already gone. */
  remove(): Promise<void>;
}

export interface ContainerRuntime {
  /** Creates the container, attaches to its output and waits for its exit, then starts it, so no output or exit is missed. */
  run(spec: ContainerSpec, onOutput: OutputHandler): Promise<ContainerHandle>;
  /**
   * As {@link run}, with stdin attached too (open until {@link WaitingContainer.begin} closes it): for the warm pool,
   * whose containers run the waiter as `spec.command`.
   */
  startWaiting(spec: ContainerSpec): Promise<WaitingContainer>;
  /** Containers carrying every given label, running or not. */
  findByLabels(
    labels: Readonly<Record<string, string>>,
  ): Promise<{ id: string; name: string; labels: Record<string, string>; running: boolean }[]>;
  /**
   * Stops (with a grace period) and removes; succeeds if already gone. Resolves once it is gone: true when this call
   * removed it, false when it was gone already or another removal of it was under way.
   */
  removeById(id: string, graceSeconds?: number): Promise<boolean>;
  /** Throws BerthError("dependency_unavailable") if the engine does not answer. */
  ping(): Promise<void>;
  /**
   * Creates the volume, or checks that the one of that name is it (same directory and labels); throws if another
   * volume has the name.
   */
  ensureVolume(spec: VolumeSpec): Promise<void>;
  /** Removes a volume: `in_use` while a container (running or not) mounts it, `missing` when there is none. */
  removeVolume(name: string): Promise<"removed" | "in_use" | "missing">;
  /** Volumes carrying every given label, with their labels and data directory. */
  findVolumes(
    labels: Readonly<Record<string, string>>,
  ): Promise<{ name: string; labels: Record<string, string>; directory: string | null }[]>;
}
