// The audit trail: who did what (submit, cancel, delete, archive download, file read, webhook change, every
// request of an admin key, every failed authentication), from where, to which task, and how it went.
//
// Recording never holds up or fails a request: the entry is written as a pino line at once (`event:
// "audit.<action>"`, for log shippers) and queued in memory; a background loop writes the queue to Redis in
// batches (store/audit-store.ts). The queue is bounded: past MAX_QUEUED the oldest entries are dropped (and
// counted in the log), so an outage of Redis costs memory only up to that bound. Failed writes are retried with
// backoff, their errors logged at most once per interval.
import type { FastifyRequest } from "fastify";
import type { Logger } from "pino";
import type { AuditAction } from "../contract/types.js";
import { throttledErrorLog } from "../logging/logger.js";
import type { AuditStore, NewAuditEntry } from "../store/audit-store.js";

/** Entries waiting for Redis at most; the oldest go first beyond it. */
export const MAX_QUEUED = 10_000;
/** Entries per write. */
const BATCH = 500;
/** A write that failed is retried after this, doubling up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
/** How long closing waits for the queue to be written. */
const CLOSE_WAIT_MS = 2000;

/** What a request concerned, as the route found it (the task and whose it is). */
export interface AuditSubject {
  readonly tenant: string | null;
  readonly taskId: string | null;
}

export class AuditTrail {
  private readonly queue: NewAuditEntry[] = [];
  private readonly subjects = new WeakMap<FastifyRequest, AuditSubject>();
  private readonly logError: ReturnType<typeof throttledErrorLog>;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private backoffMs = 0;
  private dropped = 0;
  private closed = false;

  constructor(
    private readonly store: AuditStore,
    private readonly logger: Logger,
    private readonly retentionDays: number,
  ) {
    this.logError = throttledErrorLog(logger, "audit entries could not be written to Redis; retrying", { component: "audit" });
  }

  /** Remembers what the request concerned (a route calls this once it has found the task). */
  note(request: FastifyRequest, subject: AuditSubject): void {
    this.subjects.set(request, subject);
  }

  noted(request: FastifyRequest): AuditSubject | undefined {
    return this.subjects.get(request);
  }

  /** Records an entry: logged now, written to Redis soon. Never throws, never waits. */
  record(entry: NewAuditEntry): void {
    const { action, ...fields } = entry;
    this.logger.info({ event: `audit.${action}` satisfies `audit.${AuditAction}`, ...fields }, "audit");
    if (this.closed) return;
    this.queue.push(entry);
    if (this.queue.length > MAX_QUEUED) {
      this.queue.splice(0, this.queue.length - MAX_QUEUED);
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 1000 === 0) {
        this.logger.warn({ component: "audit", dropped: this.dropped }, "audit queue full; the oldest entries are kept only in the log");
      }
    }
    this.schedule(0);
  }

  /** Entries waiting to be written. */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.writing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.writing = this.writeBatch().finally(() => {
        this.writing = undefined;
        if (this.queue.length > 0 && !this.closed) this.schedule(this.backoffMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  private async writeBatch(): Promise<void> {
    const batch = this.queue.slice(0, BATCH);
    if (batch.length === 0) return;
    try {
      await this.store.append(batch, Date.now() - this.retentionDays * 86_400_000);
      this.queue.splice(0, batch.length);
      this.backoffMs = 0;
      this.logError.reset();
    } catch (err) {
      this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs === 0 ? FIRST_BACKOFF_MS : this.backoffMs * 2);
      this.logError(err);
    }
  }

  /** Writes what is queued (waiting at most a moment), then stops. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const deadline = Date.now() + CLOSE_WAIT_MS;
    while (this.queue.length > 0 && Date.now() < deadline) {
      await this.writing;
      const before = this.queue.length;
      await Promise.race([this.writeBatch(), new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref())]);
      if (this.queue.length >= before) break; // Redis is not taking them: they are in the log
    }
    this.closed = true;
  }
}
