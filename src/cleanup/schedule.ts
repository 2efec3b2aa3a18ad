// The scheduled cleanup: a BullMQ job scheduler fires a sweep every BERTH_CLEANUP_INTERVAL_SECONDS.
// A scheduled job runs on one host only, and each host must clean its own disk, so every host has its own queue
// (`cleanup-<host>`): processes on the same host share it (one sweep per interval per host), other hosts never
// see it. Per-task locks in sweep.ts keep overlapping passes (a manual `berth workspace clean`) harmless.
import { Queue, Worker } from "bullmq";
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { throttledErrorLog } from "../logging/logger.js";
import { closeConnection, openConnection } from "../store/redis.js";
import { sweepCaches } from "./caches.js";
import { diskUsage } from "./disk-usage.js";
import { sweep, type SweepResult } from "./sweep.js";

const SCHEDULER_ID = "sweep";
/** How long BullMQ may take to close when no pass runs (it never does while Redis is down). */
const CLOSE_GRACE_MS = 2000;
const delay = (ms: number) => new Promise<"timeout">((resolve) => setTimeout(resolve, ms, "timeout").unref());

/** BullMQ queue name of a host's cleanup: queue names must not contain `:`, so anything unusual becomes `-`. */
export const cleanupQueueName = (host: string): string => `cleanup-${host.replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 200)}`;

export interface CleanupScheduler {
  /** Stops scheduling on this process (the scheduler itself stays in Redis for this host's next start). */
  close(): Promise<void>;
  /** Runs one pass here and now, outside the schedule. */
  runNow(): Promise<SweepResult>;
}

/**
 * Starts this host's cleanup schedule: upserts the job scheduler (so a changed interval takes effect) and a
 * worker that runs one sweep per job. The first pass runs right away.
 */
export async function startCleanup(deps: Deps, services: Services): Promise<CleanupScheduler> {
  const { config, logger } = deps;
  const name = cleanupQueueName(deps.host);
  const prefix = services.keys.bullPrefix;
  const queueConnection = openConnection(config.redisUrl, logger, "cleanup queue");
  const workerConnection = openConnection(config.redisUrl, logger, "cleanup worker");
  const quitAll = async () => {
    await Promise.all([closeConnection(queueConnection), closeConnection(workerConnection)]);
  };
  try {
    const queue = new Queue(name, { connection: queueConnection, prefix });
    // Both report an error on every reconnection attempt while Redis is down: logged with backoff.
    const logQueueError = throttledErrorLog(logger, "cleanup queue error", { queue: name });
    queue.on("error", logQueueError);
    queueConnection.on("ready", () => logQueueError.reset());
    const intervalMs = config.retention.cleanupIntervalSeconds * 1000;
    await queue.upsertJobScheduler(
      SCHEDULER_ID,
      { every: intervalMs },
      {
        name: SCHEDULER_ID,
        data: {},
        // Keep a little history for operators; never let finished cleanup jobs pile up in Redis.
        opts: { removeOnComplete: { count: 20 }, removeOnFail: { count: 50 }, attempts: 1 },
      },
    );
    let passRunning = false;
    const runPass = async () => {
      passRunning = true;
      try {
        const result = summary(await measured(deps, await sweep(deps, services)));
        // Then the tenants' caches no task has used for BERTH_CACHE_IDLE_DAYS.
        const caches = await sweepCaches(deps, services).catch((err: unknown) => {
          logger.error({ err }, "cache cleanup failed; the next pass retries");
          return null;
        });
        return { ...result, cachesRemoved: caches?.removed.length ?? 0 };
      } finally {
        passRunning = false;
      }
    };
    const worker = new Worker(name, runPass, {
      connection: workerConnection,
      prefix,
      concurrency: 1,
      // A pass only awaits I/O, so BullMQ keeps renewing the lock however long it takes.
      lockDuration: 60_000,
    });
    const logWorkerError = throttledErrorLog(logger, "cleanup worker error", { queue: name });
    worker.on("error", logWorkerError);
    workerConnection.on("ready", () => logWorkerError.reset());
    worker.on("failed", (_job, err) => logger.error({ err, queue: name }, "cleanup pass failed"));
    await worker.waitUntilReady();
    logger.info({ queue: name, intervalSeconds: config.retention.cleanupIntervalSeconds }, "cleanup scheduled");

    let closing: Promise<void> | undefined;
    return {
      runNow: () => sweep(deps, services),
      close() {
        closing ??= (async () => {
          try {
            // worker.close() waits for a running pass without limit, and never settles while Redis is down (nor
            // can it be forced once begun); bound it, and the connections are dropped below. A pass cut short is
            // safe: each task's files go before its record changes, so the next pass finishes what this one started.
            const waitMs = passRunning ? config.worker.shutdownTimeoutSeconds * 1000 : CLOSE_GRACE_MS;
            if ((await Promise.race([worker.close(), delay(waitMs)])) === "timeout") {
              logger.warn({ queue: name, passRunning }, "cleanup worker did not close in time; closing without waiting");
            }
            await Promise.race([queue.close(), delay(CLOSE_GRACE_MS)]);
          } finally {
            await quitAll();
          }
        })();
        return closing;
      },
    };
  } catch (err) {
    await quitAll();
    throw err;
  }
}

/** Counts the pass in the metrics and measures what both roots hold now (one `du` over each). */
async function measured(deps: Deps, r: SweepResult): Promise<SweepResult> {
  deps.metrics.cleanupPass(r.removed);
  const { workspaces, archives } = deps.config.dirs;
  const sizes = await diskUsage([workspaces, archives]).catch(() => new Map<string, number>());
  for (const [kind, dir] of [
    ["workspaces", workspaces],
    ["archives", archives],
  ] as const) {
    const bytes = sizes.get(dir);
    if (bytes !== undefined) deps.metrics.disk(kind, bytes);
  }
  return r;
}

/** What the job keeps as its return value: counts, not the full lists (they are in the logs). */
function summary(r: SweepResult) {
  return {
    removed: r.removed.length,
    purged: r.purged.length,
    skipped: r.skipped.length,
    errors: r.errors.length,
    bytesReclaimed: r.bytesReclaimed,
    durationMs: r.durationMs,
    more: r.more,
  };
}
