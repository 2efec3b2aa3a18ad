// The BullMQ worker: takes task jobs, runs them with BERTH_CONCURRENCY at once, stops them on cancel (from any
// host, via pub/sub), on a lost lock, or at shutdown, and never leaves a container behind.
import { randomBytes } from "node:crypto";
import { Worker, type Job } from "bullmq";
import type { Deps } from "../app/deps.js";
import { withDefaultLimits, type TaskRecord, type TaskSpec } from "../domain/task.js";
import { taskLogger, throttledErrorLog } from "../logging/logger.js";
import type { LogStore } from "../logs/log-store.js";
import { LABEL_NAMESPACE, LABEL_WORKER, taskIdOf } from "../runner/labels.js";
import type { StopCause } from "../runner/outcome.js";
import { TaskCaches } from "../runner/caches.js";
import { runTask } from "../runner/run-task.js";
import { removeStalePoolDirs, WarmPool, type WarmPoolStats } from "../runner/warm-pool.js";
import { FairShare } from "../store/fair-share.js";
import type { Keys } from "../store/keys.js";
import { closeConnection, openConnection, openSubscriber } from "../store/redis.js";
import { ensureNoSuidRoot, releaseNoSuidRoot, type RootMount } from "../workspace/mount.js";
import type { TaskStore } from "../store/task-store.js";
import { UsageStore } from "../store/usage-store.js";
import { WorkerRegistry } from "../store/worker-registry.js";
import { Heartbeat, reapOrphans } from "./orphans.js";
import { QUEUE_NAME, type TaskJobData } from "./queue.js";
import type { TaskEndings } from "./task-endings.js";

export interface TaskWorker {
  /**
   * Stops taking work; waits up to BERTH_SHUTDOWN_TIMEOUT_SECONDS for running tasks, then stops and records them.
   * Bounded whatever Redis does: settles within {@link shutdownBoundMs} minus a few seconds.
   */
  close(): Promise<void>;
  /** Last resort when shutdown overran its bound: force-removes every container this worker started. */
  kill(): Promise<void>;
  /** How the warm pool has served tasks so far (null without one). */
  warmPoolStats(): WarmPoolStats | null;
}

/** After the tasks are stopped at the shutdown deadline: time to remove their containers, archive and record them. */
const SHUTDOWN_RECORD_SECONDS = 10;
/** Once no task runs: how long BullMQ may take to close its connections (it waits forever while Redis is down). */
const QUEUE_CLOSE_GRACE_MS = 2000;

/**
 * The longest a worker process may take to shut down: the tasks' time to finish, their stop grace period, time to
 * record them, and a margin for the rest. The process exits by then whatever Redis or Docker do.
 */
export const shutdownBoundMs = (config: Deps["config"]): number =>
  (config.worker.shutdownTimeoutSeconds + config.worker.stopGraceSeconds + SHUTDOWN_RECORD_SECONDS + 5) * 1000;

export async function startWorker(
  deps: Deps,
  keys: Keys,
  store: TaskStore,
  logs: LogStore,
  endings: TaskEndings,
  /** How often containers whose worker is gone are looked for (after the first sweep, at start). */
  opts: { sweepEveryMs?: number } = {},
): Promise<TaskWorker> {
  const { config, logger } = deps;
  const running = new Map<string, AbortController>();
  deps.metrics.countSlotsWith(() => ({ running: running.size, concurrency: config.worker.concurrency }));
  /** Each job being processed, until it has ended (recorded, or given up). */
  const inFlight = new Set<Promise<void>>();
  /** Aborted when shutdown has waited long enough: a task still retrying its Redis writes stops trying. */
  const giveUp = new AbortController();
  const connection = openConnection(config.redisUrl, logger, "worker");
  const stopTask = (taskId: string, cause: StopCause) => running.get(taskId)?.abort(cause);
  // Cancels come from whichever process took the request, on any host.
  const subscriber = await openSubscriber(config.redisUrl, logger, "worker cancel subscriber", keys.cancelChannel, (taskId) =>
    stopTask(taskId, "canceled"),
  );

  const fair = new FairShare(deps.redis, keys);
  const usage = { store: new UsageStore(deps.redis, keys), keepSinceMs: () => Date.now() - config.auditRetentionDays * 86_400_000 };
  const caches = new TaskCaches(deps, usage.store);
  // Workspaces reach containers nosuid,nodev through their root's mount (workspace/mount.ts). Checked again before
  // each task: another worker on this host that made the mount may have undone it when it stopped.
  const root = config.dirs.workspaces;
  const mountRoot = () => ensureNoSuidRoot(root).catch((): RootMount => "failed");
  let rootMount = await mountRoot();
  let mountedHere = rootMount === "mounted";
  if (rootMount === "not_root" || rootMount === "failed") {
    logger.warn({ root, outcome: rootMount }, "workspaces are mounted without nosuid,nodev (making the root such a mount needs root)");
  }
  const keepRootMounted = async () => {
    if (rootMount === "not_root" || rootMount === "failed") return;
    rootMount = await mountRoot();
    if (rootMount === "mounted") mountedHere = true;
  };
  const workerId = `${deps.host}-${process.pid}-${randomBytes(4).toString("hex")}`;
  const { advertiseUrl } = config.cluster;
  const registry = new WorkerRegistry(deps.redis, keys, advertiseUrl ? { nodeId: deps.host, url: advertiseUrl } : null);
  const heartbeat = new Heartbeat(registry, workerId);
  await heartbeat.start();
  let pool: WarmPool | null = null;
  // Ours: a task this worker runs, or a container of its warm pool (also one the pool is still starting: a sweep
  // in that window would remove what a task may claim a moment later).
  const isOwn = (c: { id: string; name: string; labels: Record<string, string> }) =>
    running.has(taskIdOf(deps.namespace, c)) || (pool?.owns(c) ?? false);
  // One sweep at a time: a slow engine must not pile sweeps up on itself.
  let sweeping: Promise<string[]> | null = null;
  const reap = () =>
    (sweeping ??= reapOrphans(deps, registry, logger, workerId, isOwn)
      .catch((err: unknown) => {
        logger.warn({ err }, "orphan sweep failed; will retry");
        return [];
      })
      .finally(() => {
        sweeping = null;
      }));
  // Containers left by a worker that died are stopped before this one takes work, then checked every minute.
  await reap();
  const reaper = setInterval(() => void reap(), opts.sweepEveryMs ?? 60_000);
  reaper.unref();
  // The warm pool directories of workers that are gone (their containers were just reaped).
  await removeStalePoolDirs({ root, namespace: deps.namespace, isAlive: (id) => registry.isAlive(id) }).catch((err: unknown) =>
    logger.warn({ err }, "could not remove the warm pool directories of workers that are gone"),
  );
  // Containers started ahead for the profiles tasks are likely to ask for (BERTH_WARM_POOL).
  if (config.warmPool.profiles.length > 0) {
    pool = new WarmPool({
      runtime: deps.runtime,
      config,
      namespace: deps.namespace,
      host: deps.host,
      workerId,
      log: logger.child({ component: "warm pool" }),
      beforeCreate: keepRootMounted,
    });
    pool.start();
  }

  const processJob = (job: Job<TaskJobData>): Promise<void> => {
    const done = processTask(job);
    inFlight.add(done);
    void done.then(
      () => inFlight.delete(done),
      () => inFlight.delete(done),
    );
    return done;
  };

  const processTask = async (job: Job<TaskJobData>) => {
    const { taskId } = job.data;
    const [record, spec] = await Promise.all([store.get(taskId), store.getSpec(taskId)]);
    if (!record) return; // deleted before it started
    if (record.status !== "queued" && record.status !== "running") {
      // Ended already: canceled before it started, or delivered again after a worker recorded its end and died
      // before finishing the job. Make sure what follows an end (webhook, submit job) has happened.
      await endings.ended(record, { first: false });
      return;
    }
    const log = taskLogger(logger, { taskId, tenant: record.tenant, workspace: record.workspace, attempt: job.attemptsMade + 1 });
    const controller = new AbortController();
    running.set(taskId, controller);
    let poll: NodeJS.Timeout | undefined;
    try {
      if (record.status === "running" || !spec) {
        // Delivered again after the worker that ran it died or lost its lock: its container may still run.
        // Stop it and record the task as failed, so a task never runs twice at once.
        await removeTaskContainers(deps, taskId);
        controller.abort("worker_lost" satisfies StopCause);
      }
      await keepRootMounted();
      // A re-delivered task keeps its first start and host: its workspace lives on that host's disk.
      const applied = await store.transition(taskId, record.tenant, ["queued", "running"], {
        status: "running",
        startedAtMs: record.startedAtMs ?? Date.now(),
        host: record.host ?? deps.host,
      });
      if (applied !== true) return;
      // It no longer holds a place in its tenant's queue (a miss is pruned at the tenant's next submit).
      void fair.leave(record.tenant, taskId).catch(() => undefined);
      if (record.cancelRequested) controller.abort("canceled" satisfies StopCause);
      // Pub/sub can miss a message while its connection reconnects: the record's flag is checked too.
      poll = setInterval(() => {
        void store.get(taskId).then(
          (r) => {
            if (r?.cancelRequested) controller.abort("canceled" satisfies StopCause);
          },
          () => undefined,
        );
      }, 3000);
      await runTask({
        deps,
        store,
        logs,
        record: { ...record, status: "running" },
        spec: withDefaultLimits(spec ?? fallbackSpec(record), config.limits.defaults),
        log,
        workerId,
        stop: controller.signal,
        giveUp: giveUp.signal,
        usage,
        caches,
        pool,
      });
      await endings.afterRun(taskId);
    } finally {
      clearInterval(poll);
      running.delete(taskId);
    }
  };

  const worker = new Worker<TaskJobData>(QUEUE_NAME, processJob, {
    connection,
    prefix: keys.bullPrefix,
    concurrency: config.worker.concurrency,
    // Tasks never block the event loop, so a missed renewal means the worker is gone or stuck.
    lockDuration: 30_000,
    maxStalledCount: 1,
  });
  // BullMQ reports an error on every reconnection attempt while Redis is down: logged with backoff.
  const logWorkerError = throttledErrorLog(logger, "worker error", { component: "task queue" });
  worker.on("error", logWorkerError);
  connection.on("ready", () => logWorkerError.reset());
  worker.on("lockRenewalFailed", (jobIds) => {
    for (const id of jobIds) {
      logger.error({ taskId: id }, "lost the lock on a running task; stopping it so it cannot run twice");
      stopTask(id, "worker_lost");
    }
  });
  await worker.waitUntilReady();
  logger.info({ concurrency: config.worker.concurrency }, "worker started");

  let closing: Promise<void> | undefined;
  const shutdownMs = config.worker.shutdownTimeoutSeconds * 1000;
  const recordMs = (config.worker.stopGraceSeconds + SHUTDOWN_RECORD_SECONDS) * 1000;
  return {
    close() {
      closing ??= (async () => {
        // No container is started ahead any more; the unclaimed ones are removed while the tasks finish.
        const poolClosed = pool?.close().catch((err: unknown) => logger.warn({ err }, "warm pool did not close cleanly"));
        // worker.close() stops fetching, waits for running jobs, then closes BullMQ's connections; while Redis is
        // down it never settles, so it is waited for only as long as there is something to wait for.
        let queueClosed = false;
        const graceful = worker.close().then(
          () => {
            queueClosed = true;
          },
          (err: unknown) => logger.warn({ err }, "task queue did not close cleanly"),
        );
        const stopAll = setTimeout(() => {
          for (const id of running.keys()) {
            logger.warn({ taskId: id }, "shutdown deadline passed; stopping the task");
            stopTask(id, "worker_shutdown");
          }
        }, shutdownMs);
        const abandon = setTimeout(() => giveUp.abort(), shutdownMs + recordMs);
        const gaveUp = new Promise<void>((resolve) => giveUp.signal.addEventListener("abort", () => resolve(), { once: true }));
        try {
          for (;;) {
            await Promise.race([Promise.allSettled([...inFlight]), gaveUp]);
            if (giveUp.signal.aborted) break;
            await Promise.race([graceful, delay(QUEUE_CLOSE_GRACE_MS), gaveUp]);
            // A job fetched just before close() began may have started meanwhile: wait for it as for the others.
            if (queueClosed || inFlight.size === 0 || giveUp.signal.aborted) break;
          }
          if (inFlight.size > 0) {
            logger.error(
              { tasks: [...running.keys()] },
              "tasks still not recorded at the shutdown bound (Redis unreachable?); their containers are removed, and they are recorded as lost once a worker sees Redis again",
            );
          } else if (!queueClosed) {
            logger.warn("task queue did not close (Redis unreachable?); leaving without it");
          }
        } finally {
          clearTimeout(stopAll);
          clearTimeout(abandon);
          clearInterval(reaper);
          // Its containers are removed one by one; the engine may not answer (the orphan sweep takes them then).
          await Promise.race([poolClosed, delay(SHUTDOWN_RECORD_SECONDS * 1000)]);
          await heartbeat.stop();
          await Promise.all([closeConnection(subscriber), closeConnection(connection)]);
          if (mountedHere) await releaseNoSuidRoot(root).catch(() => undefined);
          await caches.close();
        }
      })();
      return closing;
    },
    warmPoolStats: () => pool?.stats() ?? null,
    async kill() {
      const mine = await withTimeout(
        deps.runtime.findByLabels({ [LABEL_NAMESPACE]: deps.namespace, [LABEL_WORKER]: workerId }),
        5000,
      ).catch(() => []);
      await Promise.all(mine.map((c) => withTimeout(deps.runtime.removeById(c.id), 5000).catch(() => undefined)));
    },
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

function withTimeout<T>(op: Promise<T>, ms: number): Promise<T> {
  return Promise.race([op, delay(ms).then(() => Promise.reject(new Error(`no answer within ${ms} ms`)))]);
}

/** By its task id label, or by its name (a warm container gets the task's name when claimed). */
async function removeTaskContainers(deps: Deps, taskId: string): Promise<void> {
  const found = await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: deps.namespace });
  for (const c of found) if (taskIdOf(deps.namespace, c) === taskId) await deps.runtime.removeById(c.id);
}

/** A record whose spec is gone (its earlier run finished the spec's life) can only be recorded, never run. */
function fallbackSpec(record: TaskRecord): TaskSpec {
  return {
    command: record.command,
    image: record.image,
    env: {},
    files: {},
    fromTask: null,
    timeoutSeconds: record.timeoutSeconds,
    limits: record.limits,
    network: record.network,
    ttlSeconds: record.ttlSeconds,
  };
}
