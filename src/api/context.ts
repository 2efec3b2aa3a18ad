// What every route shares: the server's dependencies, authentication, and finding the caller's task.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { TASK_ID_PATTERN, type TaskRecord } from "../domain/task.js";
import { BerthError, taskNotFound } from "../errors.js";
import type { LogReader } from "../logs/log-reader.js";
import type { Authenticator } from "./auth.js";
import type { LogStreamSlots } from "./log-streams.js";
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
  /** Whether /readyz checks Docker (an API-only process may not talk to an engine). */
  readonly checkDocker: boolean;
  /** The caller's task named by `:id`, or 404 (another tenant's task looks exactly like a missing one). */
  findTask(request: FastifyRequest): Promise<TaskRecord>;
  wantsEventStream(request: FastifyRequest): boolean;
  streamEvents(request: FastifyRequest, reply: FastifyReply, record: TaskRecord): Promise<void>;
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
