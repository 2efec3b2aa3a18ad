// Prometheus metrics of one process (prom-client, its only user). Modules report what happened through the small
// methods below, once per task, pass or delivery (never per chunk of output); `GET /metrics` renders the registry.
// Labels stay few and bounded: status, reason, stream, kind, outcome, and the tenant only when asked for
// (BERTH_METRICS_TENANT_LABEL), since one series per tenant can be many. Never a task id.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export type SseStream = "logs" | "events";
/** delivered: a 2xx answer; retried: failed, another attempt follows; failed: the last attempt failed; refused: the target was refused. */
export type WebhookOutcome = "delivered" | "retried" | "failed" | "refused";
export type SubmitJobOutcome = "accepted" | "refused";

export interface TaskEnd {
  readonly tenant: string;
  readonly status: string;
  readonly reason: string | null;
  readonly startedAtMs: number | null;
  readonly finishedAtMs: number | null;
}

/** Counts read when scraped (the queue's, shared by every process of a deployment). */
export interface TaskCounts {
  readonly queued: number;
  readonly running: number;
}

const RUN_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const WAIT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];
const START_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];
const SHORT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
/** A scrape never waits longer than this for a count that needs Redis. */
const COLLECT_TIMEOUT_MS = 2000;

export class Metrics {
  readonly registry = new Registry();
  private readonly tenantLabel: boolean;
  private readonly tasksTotal: Counter;
  private readonly taskFailures: Counter;
  private readonly taskDuration: Histogram;
  private readonly queueWait: Histogram;
  private readonly containerStart: Histogram;
  private readonly archiveSeconds: Histogram;
  private readonly archiveBytes: Counter;
  private readonly logBytes: Counter;
  private readonly logDropped: Counter;
  private readonly cleanupRemoved: Counter;
  private readonly cleanupBytes: Counter;
  private readonly diskBytes: Gauge;
  private readonly sseFollowers: Gauge;
  private readonly webhookDeliveries: Counter;
  private readonly webhookSeconds: Histogram;
  private readonly submitJobs: Counter;
  private taskCounts: (() => Promise<TaskCounts>) | undefined;
  private workerSlots: (() => { running: number; concurrency: number }) | undefined;

  constructor(opts: { host: string; tenantLabel: boolean }) {
    const r = this.registry;
    this.tenantLabel = opts.tenantLabel;
    const t = (names: string[]) => (opts.tenantLabel ? [...names, "tenant"] : names);
    r.setDefaultLabels({ host: opts.host });
    collectDefaultMetrics({ register: r });

    this.tasksTotal = new Counter({
      name: "berth_tasks_total",
      help: "Tasks that reached a final status in this process, by status.",
      labelNames: t(["status"]),
      registers: [r],
    });
    this.taskFailures = new Counter({
      name: "berth_task_failures_total",
      help: "Tasks that ended with a reason (oom_killed, timeout, canceled, image_not_found, ...), by reason.",
      labelNames: t(["reason"]),
      registers: [r],
    });
    this.taskDuration = new Histogram({
      name: "berth_task_duration_seconds",
      help: "How long tasks ran: container start to final status.",
      labelNames: t(["status"]),
      buckets: RUN_BUCKETS,
      registers: [r],
    });
    this.queueWait = new Histogram({
      name: "berth_queue_wait_seconds",
      help: "How long tasks waited: submit to container start.",
      labelNames: t([]),
      buckets: WAIT_BUCKETS,
      registers: [r],
    });
    this.containerStart = new Histogram({
      name: "berth_container_start_seconds",
      help: "How long the engine took to create, attach and start a task's container.",
      buckets: START_BUCKETS,
      registers: [r],
    });
    this.archiveSeconds = new Histogram({
      name: "berth_archive_seconds",
      help: "How long archiving a finished workspace took, by outcome (ok, failed).",
      labelNames: ["outcome"],
      buckets: SHORT_BUCKETS,
      registers: [r],
    });
    this.archiveBytes = new Counter({ name: "berth_archive_bytes_total", help: "Bytes of archives written (compressed).", registers: [r] });
    this.logBytes = new Counter({
      name: "berth_log_bytes_total",
      help: "Bytes of task output kept, by stream (stdout, stderr).",
      labelNames: ["stream"],
      registers: [r],
    });
    this.logDropped = new Counter({
      name: "berth_log_dropped_bytes_total",
      help: "Bytes of task output dropped past BERTH_MAX_OUTPUT_BYTES.",
      registers: [r],
    });
    this.cleanupRemoved = new Counter({
      name: "berth_cleanup_removed_total",
      help: "Tasks whose workspace, archive and log the scheduled cleanup removed, by reason (ttl, disk_budget, ...).",
      labelNames: ["reason"],
      registers: [r],
    });
    this.cleanupBytes = new Counter({
      name: "berth_cleanup_reclaimed_bytes_total",
      help: "Bytes on disk the scheduled cleanup reclaimed.",
      registers: [r],
    });
    this.diskBytes = new Gauge({
      name: "berth_disk_bytes",
      help: "Bytes on this host's disk by kind (workspaces, archives), measured after each cleanup pass.",
      labelNames: ["kind"],
      registers: [r],
    });
    this.sseFollowers = new Gauge({
      name: "berth_sse_followers",
      help: "Open Server-Sent Events streams, by stream (logs, events).",
      labelNames: ["stream"],
      registers: [r],
    });
    for (const stream of ["logs", "events"]) this.sseFollowers.set({ stream }, 0);
    this.webhookDeliveries = new Counter({
      name: "berth_webhook_deliveries_total",
      help: "Webhook delivery attempts, by outcome (delivered, retried, failed, refused).",
      labelNames: ["outcome"],
      registers: [r],
    });
    this.webhookSeconds = new Histogram({
      name: "berth_webhook_delivery_seconds",
      help: "How long one webhook delivery attempt took.",
      buckets: SHORT_BUCKETS,
      registers: [r],
    });
    this.submitJobs = new Counter({
      name: "berth_submit_jobs_total",
      help: "Jobs taken from the BullMQ submit queue, by outcome (accepted, refused).",
      labelNames: ["outcome"],
      registers: [r],
    });
    const self = this;
    new Gauge({
      name: "berth_tasks",
      help: "Tasks queued and running in the whole deployment (the same in every process: aggregate with max).",
      labelNames: ["state"],
      registers: [r],
      async collect() {
        if (!self.taskCounts) return;
        const counts = await withTimeout(self.taskCounts(), COLLECT_TIMEOUT_MS).catch(() => null);
        this.reset();
        if (!counts) return; // Redis did not answer: no sample rather than a stale one
        this.set({ state: "queued" }, counts.queued);
        this.set({ state: "running" }, counts.running);
      },
    });
    new Gauge({
      name: "berth_worker_slots",
      help: "This worker process's task slots, by state (busy, total).",
      labelNames: ["state"],
      registers: [r],
      collect() {
        const slots = self.workerSlots?.();
        if (!slots) return;
        this.set({ state: "busy" }, slots.running);
        this.set({ state: "total" }, slots.concurrency);
      },
    });
  }

  /** The queue's counts, read at each scrape. */
  countTasksWith(read: () => Promise<TaskCounts>): void {
    this.taskCounts = read;
  }

  /** This process's worker slots, read at each scrape. */
  countSlotsWith(read: () => { running: number; concurrency: number }): void {
    this.workerSlots = read;
  }

  taskEnded(end: TaskEnd): void {
    const tenant = this.tenant(end.tenant);
    this.tasksTotal.inc({ status: end.status, ...tenant });
    if (end.reason) this.taskFailures.inc({ reason: end.reason, ...tenant });
    if (end.startedAtMs != null && end.finishedAtMs != null) {
      this.taskDuration.observe({ status: end.status, ...tenant }, seconds(end.finishedAtMs - end.startedAtMs));
    }
  }

  /** A task's container started: how long it waited since submit, and how long the engine took to start it. */
  taskStarted(tenant: string, waitedMs: number, startMs: number): void {
    this.queueWait.observe(this.tenant(tenant), seconds(waitedMs));
    this.containerStart.observe(seconds(startMs));
  }

  archived(ms: number, bytes: number | null): void {
    this.archiveSeconds.observe({ outcome: bytes === null ? "failed" : "ok" }, seconds(ms));
    if (bytes !== null) this.archiveBytes.inc(bytes);
  }

  /** A task's output, once its sink has closed. */
  output(bytes: { stdout: number; stderr: number; dropped: number }): void {
    if (bytes.stdout > 0) this.logBytes.inc({ stream: "stdout" }, bytes.stdout);
    if (bytes.stderr > 0) this.logBytes.inc({ stream: "stderr" }, bytes.stderr);
    if (bytes.dropped > 0) this.logDropped.inc(bytes.dropped);
  }

  cleanupPass(removed: readonly { why: string; bytes: number }[]): void {
    for (const r of removed) {
      this.cleanupRemoved.inc({ reason: r.why });
      this.cleanupBytes.inc(r.bytes);
    }
  }

  disk(kind: "workspaces" | "archives", bytes: number): void {
    this.diskBytes.set({ kind }, bytes);
  }

  /** A stream opened; call the returned function (once) when it closes. */
  sseOpened(stream: SseStream): () => void {
    this.sseFollowers.inc({ stream });
    let open = true;
    return () => {
      if (open) this.sseFollowers.dec({ stream });
      open = false;
    };
  }

  webhookAttempt(outcome: WebhookOutcome, ms: number | null): void {
    this.webhookDeliveries.inc({ outcome });
    if (ms !== null) this.webhookSeconds.observe(seconds(ms));
  }

  submitJob(outcome: SubmitJobOutcome): void {
    this.submitJobs.inc({ outcome });
  }

  /** The text exposition format, and its Content-Type. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  private tenant(tenant: string): Record<string, string> {
    return this.tenantLabel ? { tenant } : {};
  }
}

const seconds = (ms: number) => Math.max(0, ms) / 1000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms).unref())]);
}
