// What follows a task's final status, wherever it was reached (the worker, a cancel of a queued task, a failed
// enqueue): the metrics count it, its webhook delivery is queued, and the `submit` job that created it completes.
// None of it changes or delays the task's outcome: it runs after the outcome is recorded, and its failures are
// logged, never thrown. Each step is idempotent (deterministic job ids, promote of a delayed job), so a path that
// finds a task already ended (a re-delivered job after a crash) runs them again safely.
import { Queue } from "bullmq";
import type { Deps } from "../app/deps.js";
import { isFinalStatus } from "../contract/types.js";
import { retry } from "../domain/retry.js";
import type { TaskRecord } from "../domain/task.js";
import { webhookPayload } from "../domain/view.js";
import { throttledErrorLog } from "../logging/logger.js";
import type { Keys } from "../store/keys.js";
import type { TaskStore } from "../store/task-store.js";
import type { RedisConnection } from "../store/redis.js";
import { closeWithin } from "./close-within.js";

/** How long closing waits for the queues' last commands (they never settle while Redis is down). */
const CLOSE_WAIT_MS = 2000;

export const WEBHOOK_QUEUE = "webhooks";
export const SUBMIT_QUEUE = "submit";

export interface WebhookJobData {
  readonly taskId: string;
  readonly tenant: string;
  readonly url: string;
  readonly webhookId: string;
  /** The task view as JSON, fixed when the task ended: every attempt sends the same bytes under the same id. */
  readonly payload: string;
}

/** The id of the one event a task's webhook announces (its end), the same on every attempt; also the job id. */
export const webhookId = (r: Pick<TaskRecord, "id" | "status">) => `msg_${r.id}_${r.status}`;

export class TaskEndings {
  private readonly webhooks: Queue<WebhookJobData>;
  private readonly submits: Queue;

  constructor(
    private readonly deps: Deps,
    private readonly store: TaskStore,
    keys: Keys,
    connection: RedisConnection,
  ) {
    this.webhooks = new Queue<WebhookJobData>(WEBHOOK_QUEUE, { connection, prefix: keys.bullPrefix });
    this.submits = new Queue(SUBMIT_QUEUE, { connection, prefix: keys.bullPrefix });
    // BullMQ reports an error on every reconnection attempt while Redis is down: logged with backoff.
    for (const q of [this.webhooks, this.submits]) q.on("error", throttledErrorLog(deps.logger, "queue error", { queue: q.name }));
  }

  /**
   * Call once the task's final status is recorded. `first`: this caller made the final transition (metrics count
   * each task once); false on recovery paths, which only make sure the webhook and the submit job follow.
   */
  async ended(record: TaskRecord, opts: { first: boolean }): Promise<void> {
    if (!isFinalStatus(record.status) || record.status === "expired") return;
    if (opts.first) this.deps.metrics.taskEnded(record);
    await Promise.all([this.queueWebhook(record), this.completeSubmitJob(record)]);
  }

  /** Reads the task after its run and follows up if it has ended (the run recorded it; this process did). */
  async afterRun(taskId: string): Promise<void> {
    const record = await this.store.get(taskId).catch(() => null);
    if (record) await this.ended(record, { first: true });
  }

  async close(): Promise<void> {
    // Closed only once BullMQ's first commands (its version check) have answered: closed before, a queue stops
    // listening, and their late failure when the connection closes would be an error nobody handles (on a cluster,
    // "Cluster is ended", which ends the process).
    const closeQueue = (q: Queue) => ({
      close: async () => {
        await q.waitUntilReady().catch(() => undefined);
        await q.close();
      },
    });
    await Promise.all([closeWithin(closeQueue(this.webhooks), CLOSE_WAIT_MS), closeWithin(closeQueue(this.submits), CLOSE_WAIT_MS)]);
  }

  private async queueWebhook(record: TaskRecord): Promise<void> {
    if (!record.webhookUrl || record.webhook?.status !== "pending" || record.webhook.attempts > 0) return;
    const { webhooks: settings } = this.deps.config;
    const id = webhookId(record);
    const data: WebhookJobData = {
      taskId: record.id,
      tenant: record.tenant,
      url: record.webhookUrl,
      webhookId: id,
      payload: JSON.stringify(webhookPayload(record)),
    };
    try {
      await retry({ attempts: 5, delayMs: (n) => 500 * n }, () =>
        this.webhooks.add("deliver", data, {
          // A second add of the same event (a recovery path) is ignored while the job is kept.
          jobId: id,
          attempts: settings.attempts,
          backoff: { type: "exponential", delay: settings.backoffMs, jitter: 0.25 },
          removeOnComplete: { age: 86_400, count: 10_000 },
          removeOnFail: { age: 7 * 86_400, count: 10_000 },
        }),
      );
    } catch (err) {
      this.deps.logger.error({ err, taskId: record.id }, "webhook could not be queued");
      await this.store
        .patch(record.id, { webhook: { status: "failed", attempts: 0, lastError: "could not be queued (Redis unavailable)" } })
        .catch(() => undefined);
    }
  }

  /**
   * The submit job waits, delayed, while its task runs (submit-worker.ts); promoting it makes a submit worker take
   * it again, find the task ended and complete the job with its view. A job that is not delayed at this moment is
   * being looked at by a submit worker, which re-reads the task after delaying the job (no missed end).
   */
  private async completeSubmitJob(record: TaskRecord): Promise<void> {
    if (!record.queueJobId) return;
    try {
      const job = await this.submits.getJob(record.queueJobId);
      if (job && (await job.isDelayed())) await job.promote();
    } catch (err) {
      // Not delayed any more (taken meanwhile), or Redis blinked: the job's own periodic re-check completes it.
      this.deps.logger.debug({ err, taskId: record.id, queueJobId: record.queueJobId }, "submit job not promoted");
    }
  }
}
