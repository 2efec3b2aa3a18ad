// Delivers queued webhooks (task-endings.ts queues them): one attempt per job run; BullMQ retries a failed
// attempt after an exponential backoff with jitter, up to BERTH_WEBHOOK_ATTEMPTS. The task's `webhook` field
// follows along: pending (attempts so far, last error) → delivered or failed.
import { DelayedError, UnrecoverableError, Worker, type Job } from "bullmq";
import type { Deps } from "../app/deps.js";
import type { WebhookState } from "../contract/types.js";
import { retry } from "../domain/retry.js";
import type { Keys } from "../store/keys.js";
import { throttledErrorLog } from "../logging/logger.js";
import { closeConnection, openConnection } from "../store/redis.js";
import type { TaskStore } from "../store/task-store.js";
import { deliverOnce } from "../webhooks/deliver.js";
import { closeWithin } from "./close-within.js";
import { WEBHOOK_QUEUE, type WebhookJobData } from "./task-endings.js";

/** Deliveries in flight per process: each waits on a socket at most BERTH_WEBHOOK_TIMEOUT_SECONDS. */
const CONCURRENCY = 32;
/**
 * Deliveries of one tenant in flight per process: a tenant whose receiver hangs holds at most this many slots; its
 * further jobs step aside (delayed a moment, no attempt used) so other tenants' webhooks keep going.
 */
export const PER_TENANT = 4;
const STEP_ASIDE_MS = 500;
/** Most characters of an error kept on the task. */
const MAX_ERROR_CHARS = 300;

export interface WebhookWorker {
  close(): Promise<void>;
}

export async function startWebhookWorker(deps: Deps, keys: Keys, store: TaskStore): Promise<WebhookWorker> {
  const { config, logger } = deps;
  const connection = openConnection(config.redisUrl, logger, "webhook worker");

  const record = (taskId: string, state: WebhookState) =>
    retry({ attempts: 5, delayMs: (n) => 500 * n }, () => store.patch(taskId, { webhook: state })).catch((err: unknown) =>
      logger.warn({ err, taskId }, "webhook state not recorded"),
    );

  const inFlight = new Map<string, number>();
  const processJob = async (job: Job<WebhookJobData>, token?: string) => {
    const d = job.data;
    const busy = inFlight.get(d.tenant) ?? 0;
    if (busy >= PER_TENANT) {
      // Longer each time it is picked up again (at most 30 s), so a large backlog does not spin.
      const wait = Math.min(30_000, STEP_ASIDE_MS * Math.max(1, job.attemptsStarted));
      await job.moveToDelayed(Date.now() + wait + Math.floor(Math.random() * STEP_ASIDE_MS), token);
      throw new DelayedError();
    }
    inFlight.set(d.tenant, busy + 1);
    try {
      return await attempt(job);
    } finally {
      const left = (inFlight.get(d.tenant) ?? 1) - 1;
      if (left > 0) inFlight.set(d.tenant, left);
      else inFlight.delete(d.tenant);
    }
  };

  const attempt = async (job: Job<WebhookJobData>) => {
    const d = job.data;
    const n = job.attemptsMade + 1;
    const last = n >= (job.opts.attempts ?? 1);
    const log = logger.child({ taskId: d.taskId, webhookId: d.webhookId, attempt: n });
    const secret = config.webhooks.secrets.get(d.tenant);
    if (!secret) {
      const error = "no signing secret for this tenant in BERTH_WEBHOOK_SECRETS";
      await record(d.taskId, { status: "failed", attempts: n - 1, lastError: error });
      deps.metrics.webhookAttempt("failed", null);
      throw new UnrecoverableError(error);
    }
    const started = Date.now();
    const result = await deliverOnce({
      url: d.url,
      secret,
      webhookId: d.webhookId,
      payload: d.payload,
      timeoutMs: config.webhooks.timeoutMs,
      allowPrivate: config.webhooks.allowPrivate,
    });
    const tookMs = Date.now() - started;
    if (result.ok) {
      await record(d.taskId, { status: "delivered", attempts: n, lastError: null });
      deps.metrics.webhookAttempt("delivered", tookMs);
      log.info({ status: result.status, tookMs }, "webhook delivered");
      return { status: result.status };
    }
    const error = result.error.slice(0, MAX_ERROR_CHARS);
    const gaveUp = last || result.final;
    await record(d.taskId, { status: gaveUp ? "failed" : "pending", attempts: n, lastError: error });
    deps.metrics.webhookAttempt(result.refused ? "refused" : gaveUp ? "failed" : "retried", tookMs);
    log[gaveUp ? "warn" : "info"]({ error, tookMs }, gaveUp ? "webhook failed; giving up" : "webhook attempt failed; will retry");
    throw gaveUp ? new UnrecoverableError(error) : new Error(error);
  };

  const worker = new Worker<WebhookJobData>(WEBHOOK_QUEUE, processJob, {
    connection,
    prefix: keys.bullPrefix,
    concurrency: CONCURRENCY,
    // An attempt ends within BERTH_WEBHOOK_TIMEOUT_SECONDS (at most 60 s): well inside the lock.
    lockDuration: 90_000,
  });
  // BullMQ reports an error on every reconnection attempt while Redis is down: logged with backoff.
  const logWorkerError = throttledErrorLog(logger, "webhook worker error", { component: "webhooks" });
  worker.on("error", logWorkerError);
  connection.on("ready", () => logWorkerError.reset());
  await worker.waitUntilReady();

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        try {
          // Deliveries under way end within their timeout; a delivery cut short is sent again (same webhook id).
          if (!(await closeWithin(worker, config.webhooks.timeoutMs + 2000))) {
            logger.warn("webhook queue did not close (Redis unreachable?); its deliveries are taken up again by a worker");
          }
        } finally {
          await closeConnection(connection);
        }
      })();
      return closing;
    },
  };
}
