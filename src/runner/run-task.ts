// One task end to end: workspace → container → output → exit/timeout/cancel → archive alongside the container's removal
// → record.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { Logger } from "pino";
import type { Deps } from "../app/deps.js";
import { createArchive, type ArchiveResult } from "../archive/archive.js";
import type { StartState } from "../archive/changes.js";
import { extractArchive } from "../archive/extract.js";
import { retry, type RetryPolicy } from "../domain/retry.js";
import { diskLimitBytes, type TaskRecord, type TaskSpec } from "../domain/task.js";
import { TaskFailure } from "../errors.js";
import type { LogStore } from "../logs/log-store.js";
import { OutputSink } from "../logs/output-sink.js";
import type { TaskStore } from "../store/task-store.js";
import type { UsageStore } from "../store/usage-store.js";
import { measureWorkspace } from "../workspace/usage.js";
import { chownTree, parseRunnerUser, workspacePath as workspacePathOf } from "../workspace/workspace.js";
import type { ContainerHandle, ResourceUsage } from "./container-runtime.js";
import type { PreparedCache, TaskCaches } from "./caches.js";
import { buildContainerSpec } from "./container-spec.js";
import { classify, failureOutcome, type Outcome, type StopCause, stopMessage, stopReason } from "./outcome.js";
import { startContainer } from "./start-container.js";
import { type Restored, takeStartState } from "./start-state.js";
import { superviseUntilExit } from "./supervise.js";
import type { WarmPool } from "./warm-pool.js";

export type { StopCause } from "./outcome.js";

/** How long a task's end waits out an outage: Redis restarting, the engine restarting (then in the background). */
export const RETRY = {
  /** Recording the outcome and ending the log: 30 attempts, 0.5 s more between each up to 5 s, about two minutes. */
  redisWrite: { attempts: 30, delayMs: (failed) => Math.min(500 * failed, 5000) },
  /** Removing the container before the task is recorded: 8 attempts, 0.5 s more between each, 14 s in all. */
  removeContainer: { attempts: 8, delayMs: (failed) => 500 * failed },
  /** Then in the background: every 5 s for ten minutes; after that the worker's orphan sweep takes over. */
  removeLater: { attempts: 120, firstDelayMs: 5000, delayMs: () => 5000 },
} as const satisfies Record<string, RetryPolicy>;

export interface RunTaskInput {
  readonly deps: Deps;
  readonly store: TaskStore;
  readonly logs: LogStore;
  readonly record: TaskRecord;
  readonly spec: TaskSpec;
  readonly log: Logger;
  /** Id of the worker process running the task (container label, matched against its heartbeat). */
  readonly workerId: string;
  /** Aborted with a StopCause as reason when the task must stop (cancel, shutdown, lost lock). */
  readonly stop: AbortSignal;
  /** Aborted when the worker's shutdown has waited long enough: Redis writes still being retried are given up. */
  readonly giveUp?: AbortSignal;
  /** This worker's shared caches (the tasks that ask for some need them). */
  readonly caches?: TaskCaches;
  /** Where the task's stored bytes and CPU time are counted to its tenant, and from when CPU entries are kept. */
  readonly usage?: { readonly store: UsageStore; keepSinceMs(): number };
  /** The worker's warm pool, if it keeps one: a task that fits one of its profiles starts in a container from it. */
  readonly pool?: WarmPool | null;
}

export async function runTask(input: RunTaskInput): Promise<void> {
  const { deps, store, logs, record, spec, log } = input;
  const { config } = deps;
  const startedAtMs = Date.now();
  const sink = new OutputSink(logs, record.id, { maxBytes: config.worker.maxOutputBytes, logger: log });
  let handle: ContainerHandle | undefined;
  let archiving: Promise<ArchiveOutcome> | undefined;
  let outcome: Outcome;
  let usage: ResourceUsage | null = null;
  let measuredBytes: number | null = null;
  let caches: PreparedCache[] = [];
  /** The starting workspace, to say what the task changed once it is archived; null when unknown. */
  let start: StartState | null = null;

  try {
    // Stopped before it started (a re-delivered task whose first run was lost): record it, keep what it left.
    if (input.stop.aborted) throw new TaskFailure(stopReason(input.stop), stopMessage(input.stop.reason as StopCause, spec));
    // The workspace is made (or a warm container's renamed to it) and seeded when the container starts.
    const workspacePath = workspacePathOf(config.dirs.workspaces, record.workspace);
    if (spec.caches?.length) {
      if (!input.caches) throw new TaskFailure("workspace_failed", "This worker has no caches to give the task.");
      caches = await input.caches.prepare(record.tenant, spec.caches, log);
    }

    const containerSpec = buildContainerSpec({
      config,
      namespace: deps.namespace,
      host: deps.host,
      workerId: input.workerId,
      taskId: record.id,
      tenant: record.tenant,
      spec,
      workspacePath,
      caches,
    });
    // Container start time: from the task's inputs being in place to its container running (cold or claimed).
    let inputsReadyAt = Date.now();
    const started = await startContainer({
      deps,
      record,
      spec,
      log,
      containerSpec,
      pool: input.pool ?? null,
      onOutput: (stream, chunk) => sink.write(stream, chunk),
      // Its inputs are in place: restore its fromTask, then note the starting workspace (to say what the task changed).
      ready: async (path) => {
        const restored = spec.fromTask ? await seedFromTask(input, path) : null;
        start = await takeStartState({
          root: path,
          spec,
          restored,
          archives: deps.archives,
          timeoutMs: config.worker.archiveTimeoutSeconds * 1000,
          log,
        });
        inputsReadyAt = Date.now();
      },
    });
    const runningAt = Date.now();
    deps.metrics.taskStarted(record.tenant, runningAt - record.createdAtMs, runningAt - inputsReadyAt);
    handle = started.handle;
    const { diskBaseline } = started;
    log.debug({ containerId: handle.id }, "container started");

    const supervised = await superviseUntilExit(handle, {
      spec,
      workspacePath,
      graceSeconds: config.worker.stopGraceSeconds,
      stop: input.stop,
      log,
      diskBaseline,
    });
    // The engine confirmed the exit: no process of the container is left to change the workspace, so archiving
    // starts now, alongside inspect, the output drain, the removal and the final check of the disk limit.
    let measuring: Promise<number | null> = Promise.resolve(null);
    if (
      await handle.exitConfirmed.then(
        () => true,
        () => false,
      )
    ) {
      archiving = archiveWorkspace(input, start);
      measuring = measureWorkspace(workspacePath).then(
        (u) => u.bytes,
        () => null,
      );
    }
    const exit = await handle.exited;
    usage = exit.usage ?? null;
    await Promise.race([handle.outputEnded, delay(5000)]);
    measuredBytes = await measuring;
    outcome = classify(exit, supervised.cause, spec, { atStop: supervised.diskBytes, atEnd: measuredBytes });
  } catch (err) {
    outcome = failureOutcome(err, log);
  }

  const [removed] = await Promise.all([handle ? removeContainer(handle, log) : true, sink.close()]);
  // What the task left in its caches counts to its tenant from now on.
  if (caches.length > 0) await input.caches?.measure(record.tenant, caches, log);
  deps.metrics.output(sink.bytesByStream);
  if (sink.truncated && outcome.reason === null) {
    outcome = {
      ...outcome,
      reason: "output_truncated",
      message: `Output passed ${config.worker.maxOutputBytes} bytes; the rest was dropped.`,
    };
  }

  // Without a confirmed exit, the workspace is read only once the container is gone. If the engine could not
  // confirm the removal either, a process might still write (or swap links) there, so no archive is made.
  const archive = await (archiving ??
    (removed
      ? archiveWorkspace(input, start)
      : { failed: "its container could not be removed (Docker unreachable?), so the workspace was not read" }));
  if ("failed" in archive && outcome.status === "succeeded") {
    outcome = {
      status: "failed",
      exitCode: outcome.exitCode,
      reason: "archive_failed",
      message: `The workspace could not be archived: ${archive.failed}`,
    };
  }

  const finishedAtMs = Date.now();
  // Recording the outcome must survive a Redis outage: retried, so a finished task is never left "running".
  const applied = await retrying(log, input.giveUp, "record the outcome", () =>
    store.transition(
      record.id,
      record.tenant,
      ["running"],
      {
        status: outcome.status,
        exitCode: outcome.exitCode,
        reason: outcome.reason,
        message:
          "failed" in archive && outcome.reason !== "archive_failed"
            ? joinMessages(outcome.message, `Archive failed: ${archive.failed}`)
            : outcome.message,
        startedAtMs: record.startedAtMs ?? startedAtMs,
        finishedAtMs,
        expiresAtMs: finishedAtMs + spec.ttlSeconds * 1000,
        archive: "failed" in archive ? null : { bytes: archive.bytes, sha256: archive.sha256 },
        archiveSkipped: "failed" in archive ? [] : archive.skipped.slice(0, 1000),
        workspaceBytes: "failed" in archive ? null : archive.contentBytes,
        changes: "failed" in archive ? null : (archive.changes?.summary ?? null),
        outputTruncated: sink.truncated,
        usage,
      },
      true,
    ),
  );
  if (applied !== true) log.warn({ status: applied }, "task changed while it ran (deleted?); outcome not recorded");
  else if (input.usage) {
    // What the task holds from now on counts to its tenant's stored bytes (until cleanup removes it), its CPU time
    // to its tenant's usage.
    const account = input.usage;
    const stored = {
      workspace: "failed" in archive ? (measuredBytes ?? 0) : archive.contentBytes,
      archive: "failed" in archive ? 0 : archive.bytes,
    };
    await retrying(log, input.giveUp, "count the task's usage", () =>
      account.store.credit(record, stored, { atMs: finishedAtMs, cpuSeconds: usage?.cpuSeconds ?? null }, account.keepSinceMs()),
    ).catch((err: unknown) => log.warn({ err }, "the task's usage was not counted"));
  }
  await retrying(log, input.giveUp, "end the log stream", () =>
    logs.appendEnd(record.id, { status: outcome.status, exitCode: outcome.exitCode }),
  );
  log.info(
    {
      status: outcome.status,
      exitCode: outcome.exitCode,
      reason: outcome.reason,
      durationMs: finishedAtMs - startedAtMs,
      outputBytes: sink.bytesKept,
    },
    "task finished",
  );
}

/** Removes the container, retrying for a while (the engine may be restarting). Returns whether it is gone. */
async function removeContainer(handle: ContainerHandle, log: Logger): Promise<boolean> {
  try {
    await retry(
      RETRY.removeContainer,
      () => handle.remove(),
      (err, attempt) => log.warn({ err, attempt }, "container removal failed; retrying"),
    );
    return true;
  } catch {
    log.error({ containerId: handle.id }, "container could not be removed; retrying in the background");
    void removeLater(handle, log);
    return false;
  }
}

/** Keeps trying for ten minutes (the engine restarting); after that the worker's orphan sweep takes over. */
async function removeLater(handle: ContainerHandle, log: Logger): Promise<void> {
  try {
    await retry(RETRY.removeLater, () => handle.remove());
    log.info({ containerId: handle.id }, "container removed after the engine came back");
  } catch {
    // still unreachable after ten minutes: the orphan sweep removes it
  }
}

type ArchiveOutcome = ArchiveResult | { readonly failed: string };

/** Archives the workspace, recording what changed since `start`; never rejects (a failure is returned, and logged). */
async function archiveWorkspace(input: RunTaskInput, start: StartState | null): Promise<ArchiveOutcome> {
  const { config, archives, host, metrics } = input.deps;
  // A task delivered again after its host died: its workspace is on that host's disk, not here.
  if (input.record.host !== null && input.record.host !== host) {
    return { failed: `its workspace is on host ${input.record.host}, which stopped running it` };
  }
  const started = Date.now();
  try {
    const result = await createArchive({
      workspacePath: workspacePathOf(config.dirs.workspaces, input.record.workspace),
      store: archives,
      name: input.record.workspace,
      timeoutMs: config.worker.archiveTimeoutSeconds * 1000,
      changes: { start },
    });
    metrics.archived(Date.now() - started, result.bytes);
    const notStored = result.changes?.notStored;
    if (notStored?.manifest || notStored?.changes) input.log.warn({ notStored }, "what the task changed was not all stored");
    return result;
  } catch (err) {
    metrics.archived(Date.now() - started, null);
    input.log.error({ err }, "archive failed");
    return { failed: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Seeds the new workspace from an earlier task's archive (untrusted content: extracted with limits, links not
 * followed). Returns what it restored.
 */
async function seedFromTask(input: RunTaskInput, workspacePath: string): Promise<Restored> {
  const { deps, store, spec, record } = input;
  const source = await store.getForTenant(record.tenant, spec.fromTask as string);
  if (!source?.archive) throw new TaskFailure("workspace_failed", `fromTask "${spec.fromTask}" has no archive any more.`);
  const limit = diskLimitBytes(spec.limits);
  if ((source.workspaceBytes ?? 0) > limit) {
    throw new TaskFailure(
      "disk_limit_exceeded",
      `fromTask "${source.id}" left ${((source.workspaceBytes ?? 0) / 1024 ** 2).toFixed(1)} MB, more than this task's disk limit of ${spec.limits.diskMb} MB (limits.diskMb); nothing was restored.`,
    );
  }
  const timeoutMs = deps.config.worker.archiveTimeoutSeconds * 1000;
  // From the archive store (downloaded to a private temp file when it is an object store), never from the workspace.
  const copy = await deps.archives.localCopy(source.workspace, AbortSignal.timeout(timeoutMs)).catch((err: unknown) => {
    throw new TaskFailure("workspace_failed", `Could not read the archive of fromTask "${source.id}": ${(err as Error).message}`, {
      cause: err,
    });
  });
  if (!copy) throw new TaskFailure("workspace_failed", `The archive of fromTask "${source.id}" is no longer in the archive store.`);
  let files: ReadonlySet<string>;
  try {
    // Restore only the archive berth recorded: one changed since then is refused.
    const digest = await sha256File(copy.path).catch(() => null);
    if (digest !== source.archive.sha256) {
      throw new TaskFailure(
        "workspace_failed",
        `The archive of fromTask "${source.id}" does not match its recorded sha256; nothing was restored.`,
      );
    }
    const extracted = await extractArchive({
      archivePath: copy.path,
      destPath: workspacePath,
      maxTotalBytes: Math.min(8 * 1024 ** 3, limit),
      maxEntries: 200_000,
      timeoutMs,
    });
    files = extracted.restored;
  } finally {
    await copy.dispose();
  }
  await chownTree(workspacePath, parseRunnerUser(deps.config.worker.runnerUser));
  return { id: source.id, workspace: source.workspace, files };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/**
 * Retries a Redis write for about two minutes (Redis restarting), then gives up with the last error; at once when
 * `giveUp` aborts (the worker is shutting down and has waited long enough).
 */
function retrying<T>(log: Logger, giveUp: AbortSignal | undefined, what: string, op: () => Promise<T>): Promise<T> {
  return retry(
    RETRY.redisWrite,
    op,
    (err, attempt) => {
      if (attempt === 1) log.warn({ err }, `could not ${what}; retrying`);
    },
    giveUp,
  );
}

const joinMessages = (a: string | null, b: string) => (a ? `${a} ${b}` : b);
const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
