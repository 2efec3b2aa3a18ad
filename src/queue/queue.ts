// Submitting and cancelling tasks: the only user of BullMQ's Queue.
import { createHash } from "node:crypto";
import { Queue } from "bullmq";
import type { RedisConnection } from "../store/redis.js";
import type { Deps } from "../app/deps.js";
import { BerthError, taskNotFound } from "../errors.js";
import { MAX_CACHES_PER_TENANT } from "../domain/caches.js";
import { newTaskId, workspaceName, type TaskRecord } from "../domain/task.js";
import { previewCommand } from "../domain/command.js";
import { requestFingerprint, type ValidatedSubmit } from "../domain/validate.js";
import type { LogStore } from "../logs/log-store.js";
import { FairShare } from "../store/fair-share.js";
import type { Keys } from "../store/keys.js";
import type { TaskStore } from "../store/task-store.js";
import { UsageStore } from "../store/usage-store.js";
import { checkWebhookAtSubmit } from "../webhooks/target.js";
import type { TaskEndings } from "./task-endings.js";

export const QUEUE_NAME = "tasks";

export interface TaskJobData {
  readonly taskId: string;
}

export const hashIdempotencyKey = (key: string) => createHash("sha256").update(key).digest("hex").slice(0, 32);

export class TaskQueue {
  private readonly queue: Queue<TaskJobData>;
  private readonly fair: FairShare;
  private readonly usage: UsageStore;

  constructor(
    private readonly deps: Deps,
    keys: Keys,
    private readonly store: TaskStore,
    private readonly logs: LogStore,
    private readonly endings: TaskEndings,
    connection: RedisConnection,
  ) {
    this.queue = new Queue<TaskJobData>(QUEUE_NAME, { connection, prefix: keys.bullPrefix });
    this.fair = new FairShare(deps.redis, keys);
    this.usage = new UsageStore(deps.redis, keys);
  }

  /**
   * Creates the task record and queues its job. Returns the record and whether it already existed.
   * `queueJobId`: the `submit` queue job it comes from (submit-worker.ts).
   */
  async submit(
    tenant: string,
    input: ValidatedSubmit,
    from: { queueJobId?: string } = {},
  ): Promise<{ record: TaskRecord; created: boolean }> {
    const { config } = this.deps;
    const webhookUrl = await this.webhookOf(tenant, input);
    if (input.spec.fromTask) {
      const source = await this.store.getForTenant(tenant, input.spec.fromTask);
      if (!source)
        throw new BerthError("invalid_input", `Invalid fromTask: no task "${input.spec.fromTask}" of yours exists.`, { field: "fromTask" });
      if (source.status === "expired")
        throw new BerthError("invalid_input", `Invalid fromTask: task "${source.id}" has expired; its workspace is gone.`, {
          field: "fromTask",
        });
      if (!source.archive)
        throw new BerthError(
          "invalid_input",
          `Invalid fromTask: task "${source.id}" has no archive yet (status ${source.status}); wait until it has finished.`,
          { field: "fromTask" },
        );
    }
    if (config.tenantMaxStoredBytes > 0) await this.checkStorage(tenant);
    if (input.spec.caches?.length) await this.checkCaches(tenant, input.spec.caches);
    const now = Date.now();
    const id = newTaskId();
    const record: TaskRecord = {
      id,
      tenant,
      workspace: workspaceName(now, id),
      status: "queued",
      image: input.spec.image,
      command: input.spec.command,
      commandPreview: previewCommand(input.spec.command),
      labels: input.labels,
      createdAtMs: now,
      startedAtMs: null,
      finishedAtMs: null,
      expiresAtMs: null,
      exitCode: null,
      reason: null,
      message: null,
      timeoutSeconds: input.spec.timeoutSeconds,
      limits: input.spec.limits,
      network: input.spec.network,
      ttlSeconds: input.spec.ttlSeconds,
      archive: null,
      archiveSkipped: [],
      outputTruncated: false,
      cancelRequested: false,
      host: null,
      ...(input.spec.caches?.length ? { caches: input.spec.caches } : {}),
      webhookUrl,
      webhook: webhookUrl ? { status: "pending", attempts: 0, lastError: null } : null,
      queueJobId: from.queueJobId ?? null,
    };
    const outcome = await this.store.create(record, input.spec, {
      maxActive: config.tenantMaxActive,
      idempotencyKeyHash: input.idempotencyKey ? hashIdempotencyKey(input.idempotencyKey) : null,
      requestFingerprint: input.idempotencyKey ? requestFingerprint(input) : null,
      idempotencyTtlSeconds: config.retention.maxSeconds + 86_400,
    });
    if (outcome.kind === "over_limit") {
      throw new BerthError(
        "tenant_over_limit",
        `You have ${outcome.active} queued or running tasks, the most BERTH_TENANT_MAX_ACTIVE allows (${config.tenantMaxActive}); retry when some have finished.`,
        { retryAfterSeconds: 5 },
      );
    }
    if (outcome.kind === "reused") {
      throw new BerthError(
        "idempotency_key_reused",
        `This idempotency key was already used for a different request (task "${outcome.id}"); send the same request again to get that task, or use a new key for a new one.`,
        { taskId: outcome.id },
      );
    }
    if (outcome.kind === "existing") {
      const existing = await this.store.get(outcome.id);
      if (!existing) throw taskNotFound(outcome.id);
      return { record: existing, created: false };
    }
    try {
      // Tenants take turns: the task's priority is its place in its tenant's queue (store/fair-share.ts).
      const priority = await this.fair.assign(tenant, id);
      await this.queue.add(
        "run",
        { taskId: id },
        {
          jobId: id,
          priority,
          // A processor that throws before the task ran (Redis blip) is retried; one that finds the task already
          // running records it as lost instead of running it twice (worker.ts).
          attempts: 3,
          backoff: { type: "exponential", delay: 2000 },
          removeOnComplete: { age: 3600, count: 1000 },
          removeOnFail: { age: 86_400, count: 5000 },
        },
      );
    } catch (err) {
      // The record exists but no worker will see it: end it now rather than leave it queued forever.
      const ended = await this.store
        .transition(
          id,
          tenant,
          ["queued"],
          {
            status: "failed",
            reason: "internal_error",
            message: "The task could not be queued; submit it again.",
            finishedAtMs: Date.now(),
          },
          true,
        )
        .catch(() => undefined);
      if (ended === true) {
        const failed = await this.store.get(id).catch(() => null);
        if (failed) await this.endings.ended(failed, { first: true });
      }
      throw new BerthError("dependency_unavailable", "Redis did not accept the task; retry shortly.", {}, { cause: err });
    }
    // Behind Sentinel, answer only once a replica holds the record and the job: a failover now cannot lose the task.
    await this.store.confirmWrites();
    return { record, created: true };
  }

  /**
   * Cancels a queued task at once (it never starts) or asks whichever worker runs it to stop it.
   * Returns the record after the request. Finished tasks: BerthError("wrong_state").
   */
  async cancel(tenant: string, id: string): Promise<TaskRecord> {
    const record = await this.store.getForTenant(tenant, id);
    if (!record) throw taskNotFound(id);
    if (record.status === "queued") {
      const now = Date.now();
      const applied = await this.store.transition(
        id,
        tenant,
        ["queued"],
        {
          status: "canceled",
          reason: "canceled",
          message: "Canceled before it started.",
          finishedAtMs: now,
          expiresAtMs: now + record.ttlSeconds * 1000,
          cancelRequested: true,
        },
        true,
      );
      if (applied === true) {
        await this.queue.remove(id).catch(() => undefined);
        await this.fair.leave(tenant, id).catch(() => undefined);
        await this.logs.appendEnd(id, { status: "canceled", exitCode: null });
        const canceled = await this.store.get(id);
        if (canceled) await this.endings.ended(canceled, { first: true });
        return canceled ?? record;
      }
      if (applied !== "running") throw wrongState(id, applied ?? "gone", "canceled");
    } else if (record.status !== "running") {
      throw wrongState(id, record.status, "canceled");
    }
    await this.store.patch(id, { cancelRequested: true });
    await this.store.publishCancel(id);
    return (await this.store.get(id)) ?? record;
  }

  /**
   * A tenant whose workspaces, archives and caches hold BERTH_TENANT_MAX_STORED_BYTES or more submits nothing more
   * until cleanup (or its own deletes) bring it under; what runs goes on.
   */
  private async checkStorage(tenant: string): Promise<void> {
    const max = this.deps.config.tenantMaxStoredBytes;
    const s = await this.usage.stored(tenant);
    const total = s.workspaces + s.archives + s.caches;
    if (total < max) return;
    throw new BerthError(
      "quota_exceeded",
      `Your tasks and caches hold ${total} bytes (workspaces ${s.workspaces}, archives ${s.archives}, caches ${s.caches}), at or above the ${max} bytes BERTH_TENANT_MAX_STORED_BYTES allows; delete finished tasks or wait for cleanup to expire some (caches are removed by an operator with berth cache remove), then submit again.`,
      { storedBytes: total, maxStoredBytes: max, retryAfterSeconds: this.deps.config.retention.cleanupIntervalSeconds },
    );
  }

  /** A tenant has at most MAX_CACHES_PER_TENANT caches: a task may use those it has, or new ones up to the bound. */
  private async checkCaches(tenant: string, names: readonly string[]): Promise<void> {
    const known = new Set(await this.usage.cacheNames(tenant));
    const fresh = names.filter((n) => !known.has(n));
    if (known.size + fresh.length <= MAX_CACHES_PER_TENANT) return;
    throw new BerthError(
      "invalid_input",
      `Invalid caches: you have ${known.size} caches (${[...known].sort().join(", ")}), and ${MAX_CACHES_PER_TENANT} is the most a tenant may have; use those, or ask an operator to remove some (berth cache remove).`,
      { field: "caches" },
    );
  }

  /**
   * Closes the task queue and the queues of what follows a task's end (task-endings.ts). Bounded: BullMQ's close
   * waits on Redis, which may be gone.
   */
  async close(): Promise<void> {
    // BullMQ's first commands on a shared connection (its version check) may still be in flight, slowest on a
    // cluster; closing the connection under them makes BullMQ emit an error nobody listens to any more.
    const closeQueue = async () => {
      await this.queue.waitUntilReady().catch(() => undefined);
      await this.queue.close();
    };
    const closed = Promise.all([closeQueue(), this.endings.close()]);
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  }

  /**
   * Where the task's end is announced: the body's webhook.url (checked: the tenant can sign, and the host resolves to
   * an allowed address), else the tenant's default, else nowhere.
   */
  private async webhookOf(tenant: string, input: ValidatedSubmit): Promise<string | null> {
    const { webhooks } = this.deps.config;
    if (!input.webhookUrl) return webhooks.defaults.get(tenant) ?? null;
    if (!webhooks.secrets.has(tenant)) {
      throw new BerthError(
        "invalid_input",
        "Invalid webhook.url: this server has no signing secret for your tenant (BERTH_WEBHOOK_SECRETS), so it sends you no webhooks.",
        { field: "webhook.url" },
      );
    }
    await checkWebhookAtSubmit(input.webhookUrl, webhooks.allowPrivate);
    return input.webhookUrl;
  }

  /** Tasks waiting for a worker and running now, across the deployment (the metrics' `berth_tasks`). */
  async taskCounts(): Promise<{ queued: number; running: number }> {
    const c = await this.queue.getJobCounts("waiting", "prioritized", "delayed", "waiting-children", "active");
    return { queued: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0) + (c["waiting-children"] ?? 0), running: c.active ?? 0 };
  }

  /** For tests and readiness: counts of jobs by state. */
  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts("waiting", "active", "delayed", "failed", "completed");
  }
}

const wrongState = (id: string, status: string, action: string) =>
  new BerthError("wrong_state", `Task "${id}" is ${status}; only queued or running tasks can be ${action}.`, { taskId: id, status });
