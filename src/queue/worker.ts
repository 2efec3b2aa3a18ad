// The BullMQ worker: takes task jobs, runs them with BERTH_CONCURRENCY at once, stops them on cancel (from any
// host, via pub/sub), on a lost lock, or at shutdown, and never leaves a container behind.
import { randomBytes } from "node:crypto";
import { Worker, type Job } from "bullmq";
import type { Deps } from "../app/deps.js";
import type { TaskRecord, TaskSpec } from "../domain/task.js";
import { taskLogger } from "../logging/logger.js";
import type { LogStore } from "../logs/log-store.js";
import { LABEL_NAMESPACE, LABEL_TASK_ID } from "../runner/labels.js";
import { runTask, type StopCause } from "../runner/run-task.js";
import type { Keys } from "../store/keys.js";
import { closeConnection, openConnection, openSubscriber } from "../store/redis.js";
import type { TaskStore } from "../store/task-store.js";
import { WorkerRegistry } from "../store/worker-registry.js";
import { Heartbeat, reapOrphans } from "./orphans.js";
import { QUEUE_NAME, type TaskJobData } from "./queue.js";

export interface TaskWorker {
  /** Stops taking work; waits up to BERTH_SHUTDOWN_TIMEOUT_SECONDS for running tasks, then stops and records them. */
  close(): Promise<void>;
}

export async function startWorker(deps: Deps, keys: Keys, store: TaskStore, logs: LogStore): Promise<TaskWorker> {
  const { config, logger } = deps;
  const running = new Map<string, AbortController>();
  const connection = openConnection(config.redisUrl, logger, "worker");
  const stopTask = (taskId: string, cause: StopCause) => running.get(taskId)?.abort(cause);
  // Cancels come from whichever process took the request, on any host.
  const subscriber = await openSubscriber(config.redisUrl, logger, "worker cancel subscriber", keys.cancelChannel, (taskId) =>
    stopTask(taskId, "canceled"),
  );

  const workerId = `${deps.host}-${process.pid}-${randomBytes(4).toString("hex")}`;
  const registry = new WorkerRegistry(deps.redis, keys);
  const heartbeat = new Heartbeat(registry, workerId);
  await heartbeat.start();
  const reap = () =>
    reapOrphans(deps, registry, logger, workerId, (id) => running.has(id)).catch((err: unknown) => {
      logger.warn({ err }, "orphan sweep failed; will retry");
      return [];
    });
  // Containers left by a worker that died are stopped before this one takes work, then checked every minute.
  await reap();
  const reaper = setInterval(() => void reap(), 60_000);
  reaper.unref();

  const processJob = async (job: Job<TaskJobData>) => {
    const { taskId } = job.data;
    const [record, spec] = await Promise.all([store.get(taskId), store.getSpec(taskId)]);
    if (!record || (record.status !== "queued" && record.status !== "running")) return; // canceled or deleted before it started
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
      // A re-delivered task keeps its first start and host: its workspace lives on that host's disk.
      const applied = await store.transition(taskId, record.tenant, ["queued", "running"], {
        status: "running",
        startedAtMs: record.startedAtMs ?? Date.now(),
        host: record.host ?? deps.host,
      });
      if (applied !== true) return;
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
        spec: spec ?? fallbackSpec(record),
        log,
        workerId,
        stop: controller.signal,
      });
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
  worker.on("error", (err) => logger.error({ err }, "worker error"));
  worker.on("lockRenewalFailed", (jobIds) => {
    for (const id of jobIds) {
      logger.error({ taskId: id }, "lost the lock on a running task; stopping it so it cannot run twice");
      stopTask(id, "worker_lost");
    }
  });
  await worker.waitUntilReady();
  logger.info({ concurrency: config.worker.concurrency }, "worker started");

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        const closed = worker.close();
        const deadline = setTimeout(() => {
          for (const id of running.keys()) {
            logger.warn({ taskId: id }, "shutdown deadline passed; stopping the task");
            stopTask(id, "worker_shutdown");
          }
        }, config.worker.shutdownTimeoutSeconds * 1000);
        deadline.unref();
        try {
          await closed;
        } finally {
          clearTimeout(deadline);
          clearInterval(reaper);
          await heartbeat.stop();
          await closeConnection(subscriber);
          await closeConnection(connection);
        }
      })();
      return closing;
    },
  };
}

async function removeTaskContainers(deps: Deps, taskId: string): Promise<void> {
  const found = await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: deps.namespace, [LABEL_TASK_ID]: taskId });
  for (const c of found) await deps.runtime.removeById(c.id);
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
