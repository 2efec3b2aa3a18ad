// Starting a task's container: a warm one from the pool when the task fits a profile and one can be had, else
// created and started now (the cold path). Either way the task gets its workspace with its inputs, the same
// container (same spec, same hardening), its output from the first byte, and an exit the engine confirms.
import type { Logger } from "pino";
import type { Deps } from "../app/deps.js";
import type { TaskRecord, TaskSpec } from "../domain/task.js";
import { BerthError, statusOf, TaskFailure } from "../errors.js";
import { inputBytes } from "../workspace/usage.js";
import { adoptWorkspace, parseRunnerUser, prepareWorkspace } from "../workspace/workspace.js";
import type { ContainerHandle, ContainerSpec, OutputHandler } from "./container-runtime.js";
import { type DiskBaseline, freeBytesAt } from "./disk-watch.js";
import type { WarmLease, WarmPool } from "./warm-pool.js";

export interface Started {
  readonly handle: ContainerHandle;
  /** What the workspace held before the task's command started, when known without walking it. */
  readonly diskBaseline: DiskBaseline | null;
}

export async function startContainer(opts: {
  readonly deps: Deps;
  readonly record: TaskRecord;
  readonly spec: TaskSpec;
  readonly log: Logger;
  readonly containerSpec: ContainerSpec;
  readonly pool: WarmPool | null;
  readonly onOutput: OutputHandler;
  /** Runs once the workspace has the task's files, before its command starts (restores its fromTask, if any). */
  readonly ready: (workspacePath: string) => Promise<void>;
}): Promise<Started> {
  const lease = opts.pool ? await opts.pool.take(opts.containerSpec) : null;
  if (lease) {
    const warm = await startWarm(opts, lease);
    if (warm) return warm;
  }
  const { deps, record, spec } = opts;
  const workspacePath = await prepareWorkspace({
    root: deps.config.dirs.workspaces,
    name: record.workspace,
    runner: parseRunnerUser(deps.config.worker.runnerUser),
    files: spec.files,
  });
  await opts.ready(workspacePath);
  const diskBaseline = await baseline(spec, workspacePath);
  logStart(opts, false);
  return { handle: await deps.runtime.run(opts.containerSpec, opts.onOutput), diskBaseline };
}

/**
 * Makes the claimed container the task's: its name (the same guard against running a task twice as the cold
 * path's create), its directory as the workspace with the inputs, then its command. Null when the container could
 * not be used (the task then starts cold); throws what the cold path would throw for the same cause.
 */
async function startWarm(opts: Parameters<typeof startContainer>[0], lease: WarmLease): Promise<Started | null> {
  const { deps, record, spec, containerSpec } = opts;
  try {
    // Both settle before anything else happens: the directory must not be renamed behind the cold path's back.
    const [renamed, adopted] = await Promise.allSettled([
      lease.rename(containerSpec.name),
      adoptWorkspace({
        root: deps.config.dirs.workspaces,
        name: record.workspace,
        from: lease.dir,
        runner: parseRunnerUser(deps.config.worker.runnerUser),
        files: spec.files,
      }),
    ]);
    if (renamed.status === "rejected") {
      if (statusOf(renamed.reason) === 409) {
        throw new BerthError(
          "wrong_state",
          `A container named ${containerSpec.name} already exists: this task is already being run.`,
          { name: containerSpec.name },
          { cause: renamed.reason },
        );
      }
      throw renamed.reason;
    }
    if (adopted.status === "rejected") throw adopted.reason;
    await opts.ready(adopted.value);
    const diskBaseline = await baseline(spec, adopted.value);
    logStart(opts, true, lease);
    return { handle: await lease.begin(containerSpec.command, containerSpec.env, opts.onOutput), diskBaseline };
  } catch (err) {
    // The waiter ran nothing: removing the container undoes the claim.
    await lease.discard();
    if (err instanceof TaskFailure || (err instanceof BerthError && err.code === "wrong_state")) throw err;
    opts.log.warn({ err, containerId: lease.containerId }, "could not use a warm container; starting one");
    return null;
  }
}

/** The disk limit's watcher starts from what the inputs hold (a copied fromTask workspace is walked instead). */
const baseline = (spec: TaskSpec, workspacePath: string): Promise<DiskBaseline | null> =>
  spec.fromTask
    ? Promise.resolve(null)
    : freeBytesAt(workspacePath).then(
        (freeBytes) => ({ bytes: inputBytes(spec.files), freeBytes }),
        () => null,
      );

function logStart(opts: Parameters<typeof startContainer>[0], warm: boolean, lease?: WarmLease): void {
  const { spec, containerSpec } = opts;
  opts.log.info(
    {
      image: spec.image,
      timeoutSeconds: spec.timeoutSeconds,
      limits: spec.limits,
      network: containerSpec.network,
      warm,
      ...(lease ? { profile: lease.profile } : {}),
    },
    "container starting",
  );
}
