// The `submit` queue (API.md §5 "Enqueuing through BullMQ itself"): a service on BullMQ adds a job whose data is
// the body of POST /v1/tasks (plus an optional "tenant"); berth validates it as the API does, creates the task with
// the job id as its idempotency key, and completes the job with the final task view.
//
// The job does not hold a worker slot while its task runs. Each run of the processor is short:
//   1. first run: validate, create the task (idempotent: a job run twice finds its task), note the task id in the
//      job's progress ({"taskId"}), then move the job to `delayed`;
//   2. the task's end (task-endings.ts, in whichever process records it) promotes the delayed job;
//   3. the next run finds the task ended and returns its view: the job completes.
// Every state is in Redis, so this holds across restarts and hosts. Should a promote be missed (the process ending
// the task died just then), the delay itself brings the job back to look again: after 10 s, then 10 s more each
// time, at most 5 minutes apart. A refused body fails the job at once (UnrecoverableError: no retry).
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { isFinalStatus, type TaskView } from "../contract/types.js";
import { validateSubmit } from "../domain/validate.js";
import { toView } from "../domain/view.js";
import { BerthError } from "../errors.js";
import { AuditStore, type NewAuditEntry } from "../store/audit-store.js";
import { throttledErrorLog } from "../logging/logger.js";
import { closeConnection, openConnection } from "../store/redis.js";
import { closeWithin } from "./close-within.js";
import { SUBMIT_QUEUE } from "./task-endings.js";

/** What the audit trail names as the route of a submit through the queue. */
export const SUBMIT_QUEUE_ROUTE = "bullmq:submit";
/** How long closing waits for the runs under way. */
const CLOSE_WAIT_MS = 2000;
/** Jobs handled at once per process; each run is a few Redis round trips. */
const CONCURRENCY = 16;
const TENANT = /^[A-Za-z0-9_.-]{1,64}$/;

export interface SubmitWorker {
  close(): Promise<void>;
}

/** How long the job waits before looking at its task again, should no promote come first. */
export const recheckDelayMs = (runs: number) => Math.min(300_000, 10_000 * Math.max(1, runs));

export async function startSubmitWorker(deps: Deps, services: Services): Promise<SubmitWorker> {
  const { config, logger } = deps;
  const connection = openConnection(config.redisUrl, logger, "submit worker");
  const tenants = new Set(config.apiKeys.size > 0 ? config.apiKeys.values() : ["default"]);
  const auditStore = new AuditStore(deps.redis, services.keys);

  /**
   * The audit trail's entry of a job's submit, as POST /v1/tasks has one: logged at once, written to the tenant's
   * stream before the job goes on (a failed write is logged, never fails the job). No key and no address: the
   * job came through Redis; its id stands for the request's.
   */
  const audit = async (job: Job, entry: Pick<NewAuditEntry, "tenant" | "taskId" | "outcome" | "status">) => {
    const full: NewAuditEntry = {
      time: new Date().toISOString(),
      action: "submit",
      actor: entry.tenant === null ? "unknown" : "tenant",
      keyId: null,
      remoteAddress: "",
      requestId: `job:${job.id}`,
      method: "JOB",
      route: SUBMIT_QUEUE_ROUTE,
      ...entry,
    };
    const { action, ...fields } = full;
    logger.info({ event: `audit.${action}`, ...fields }, "audit");
    await auditStore
      .append([full], Date.now() - config.auditRetentionDays * 86_400_000)
      .catch((err: unknown) => logger.warn({ err, queueJobId: job.id }, "audit entry of a submit job not written to Redis"));
  };

  const refuse = async (job: Job, message: string, tenant: string | null = null): Promise<never> => {
    deps.metrics.submitJob("refused");
    logger.info({ queueJobId: job.id, reason: message }, "submit job refused");
    await audit(job, { tenant, taskId: null, outcome: "denied", status: 400 });
    throw new UnrecoverableError(message);
  };

  /** Validates the job and creates its task (or finds the one an earlier run created). */
  const createTask = async (job: Job) => {
    const data: unknown = job.data;
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      return refuse(job, 'The job data must be a JSON object: the body of POST /v1/tasks, with an optional "tenant".');
    }
    if (Buffer.byteLength(JSON.stringify(data)) > config.http.maxBodyBytes) {
      return refuse(job, `The job data is larger than BERTH_MAX_BODY_BYTES (${config.http.maxBodyBytes} bytes); send smaller files.`);
    }
    const { tenant: given, ...body } = data as Record<string, unknown>;
    const tenant = given === undefined ? config.queueTenant : given;
    if (typeof tenant !== "string" || !TENANT.test(tenant) || !tenants.has(tenant)) {
      return refuse(job, `Invalid tenant: ${JSON.stringify(tenant)} is not a tenant of this server (BERTH_API_KEYS).`);
    }
    const jobId = job.id as string;
    if (body.idempotencyKey !== undefined && body.idempotencyKey !== jobId) {
      return refuse(
        job,
        "Invalid idempotencyKey: the job id is the idempotency key; leave idempotencyKey out or make it the job id.",
        tenant,
      );
    }
    try {
      const input = validateSubmit(body, config, jobId);
      const { record, created } = await services.queue.submit(tenant, input, { queueJobId: jobId });
      if (created) {
        deps.metrics.submitJob("accepted");
        await audit(job, { tenant, taskId: record.id, outcome: "ok", status: 202 });
      }
      logger.info(
        { queueJobId: jobId, taskId: record.id, tenant, created },
        created ? "task queued from the submit queue" : "submit job matched its task",
      );
      return record;
    } catch (err) {
      // Refused bodies fail the job for good; anything else (Redis, say) is thrown for BullMQ to handle.
      if (err instanceof BerthError && err.code !== "dependency_unavailable" && err.code !== "internal_error") {
        return refuse(job, err.message, tenant);
      }
      throw err;
    }
  };

  const processJob = async (job: Job, token?: string): Promise<TaskView> => {
    const known = taskIdOf(job.progress);
    let record = known ? await services.store.get(known) : await createTask(job);
    if (!record) throw new UnrecoverableError(`Task "${known}" was deleted before it ended.`);
    if (!known) await job.updateProgress({ taskId: record.id });
    if (isFinalStatus(record.status)) return toView(record);

    // Wait, delayed, without a worker slot. Re-read after the move: an end recorded before it found the job
    // active (not delayed) and could not promote it, so promote it here.
    await job.moveToDelayed(Date.now() + recheckDelayMs(job.attemptsStarted), token);
    record = await services.store.get(record.id);
    if (!record || isFinalStatus(record.status)) await job.promote().catch(() => undefined);
    throw new DelayedError();
  };

  const worker = new Worker(SUBMIT_QUEUE, processJob, {
    connection,
    prefix: services.keys.bullPrefix,
    concurrency: CONCURRENCY,
    // A run is short; a job whose worker vanished mid-run comes back (a Redis outage can stall several in a row).
    maxStalledCount: 10,
  });
  // BullMQ reports an error on every reconnection attempt while Redis is down: logged with backoff.
  const logWorkerError = throttledErrorLog(logger, "submit worker error", { component: "submit queue" });
  worker.on("error", logWorkerError);
  connection.on("ready", () => logWorkerError.reset());
  await worker.waitUntilReady();
  logger.info({ queue: SUBMIT_QUEUE, prefix: services.keys.bullPrefix }, "submit queue open");

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        try {
          // A run is a few Redis round trips; one cut short runs again (its task is found by the job id).
          if (!(await closeWithin(worker, CLOSE_WAIT_MS)))
            logger.warn("submit queue did not close (Redis unreachable?); leaving without it");
        } finally {
          await closeConnection(connection);
        }
      })();
      return closing;
    },
  };
}

function taskIdOf(progress: unknown): string | null {
  if (typeof progress !== "object" || progress === null || !("taskId" in progress)) return null;
  return typeof progress.taskId === "string" ? progress.taskId : null;
}
