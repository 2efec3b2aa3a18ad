// What every route shares: the server's dependencies, authentication, and finding the caller's task.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { TASK_ID_PATTERN, type TaskRecord } from "../domain/task.js";
import { BerthError, taskNotFound } from "../errors.js";
import type { LogReader } from "../logs/log-reader.js";
import type { AuditTrail } from "./audit.js";
import type { Authenticator } from "./auth.js";
import type { ChangeReads } from "./change-reads.js";
import type { LogStreamSlots } from "./log-streams.js";
import type { RawQuery } from "./raw-follow.js";
import type { TaskWaiter } from "./task-waiter.js";

export interface ApiContext {
  readonly deps: Deps;
  readonly services: Services;
  readonly auth: Authenticator;
  /** Long polls waiting for tasks to end. */
  readonly waiter: TaskWaiter;
  /** Reads of task logs for clients: their own Redis connection, a bounded number at once. */
  readonly logReader: LogReader;
  /** Caps on log responses open at once (429 beyond them). */
  readonly logStreams: LogStreamSlots;
  /** Caps on diffs and change-only archives being made at once (429 beyond them). */
  readonly changeReads: ChangeReads;
  /** Whether /readyz checks Docker (an API-only process may not talk to an engine). */
  readonly checkDocker: boolean;
  /** Who did what: every route's action is recorded by the audit hook (api/audit-hook.ts). */
  readonly audit: AuditTrail;
  /**
   * The caller's task named by `:id` (any tenant's for an admin key), or 404: another tenant's task looks exactly
   * like a missing one. Notes the task for the audit trail.
   */
  findTask(request: FastifyRequest): Promise<TaskRecord>;
  /**
   * Whose tasks (usage, audit entries) a request covers: a tenant key's own tenant; an admin key's `?tenant=`, or
   * null for every tenant. A tenant key naming another tenant gets 404, as for anything not its own.
   */
  scopeOf(request: FastifyRequest): string | null;
  /** The tenants this server has keys for, sorted. */
  tenants(): string[];
  wantsEventStream(request: FastifyRequest): boolean;
  streamEvents(request: FastifyRequest, reply: FastifyReply, record: TaskRecord): Promise<void>;
  /** The task's output as raw bytes (raw-follow.ts). */
  streamRaw(request: FastifyRequest, reply: FastifyReply, record: TaskRecord, query: RawQuery): Promise<void>;
}

/** What a `?tenant=` may be: a tenant name as BERTH_API_KEYS writes them. */
const TENANT_PARAM = /^[A-Za-z0-9_.-]{1,64}$/;

/** {@link ApiContext.scopeOf}, given the caller the request authenticated as. */
export function scopeOf(request: FastifyRequest, caller: { admin: boolean; tenant: string | null }): string | null {
  const asked = (request.query as Record<string, string | undefined>).tenant;
  if (asked !== undefined && !TENANT_PARAM.test(asked)) {
    throw new BerthError("invalid_input", "Invalid tenant: a tenant name is 1-64 characters of A-Z, a-z, 0-9, _, . and -.", {
      field: "tenant",
    });
  }
  if (caller.admin) return asked ?? null;
  if (asked !== undefined && asked !== caller.tenant) {
    throw new BerthError("not_found", `No tenant "${asked}" for this key; leave tenant out to see your own.`, { field: "tenant" });
  }
  return caller.tenant;
}

export function taskIdParam(request: FastifyRequest): string {
  const id = (request.params as { id?: string }).id ?? "";
  if (!TASK_ID_PATTERN.test(id)) throw taskNotFound(id.slice(0, 80));
  return id;
}

/** Shared by routes that need a visible task; expired tasks answer 410 where the resource is gone. */
export function assertNotExpired(record: TaskRecord, what: string): void {
  if (record.status === "expired") {
    throw new BerthError(
      "expired",
      `Task "${record.id}" has expired; its ${what} was removed at ${new Date(record.expiresAtMs ?? 0).toISOString()}.`,
    );
  }
}
