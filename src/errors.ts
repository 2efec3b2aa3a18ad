// Error types shared by every module; imports nothing from the rest of src/.

/** Codes a client can see in `{"error": {"code"}}`: one per distinct thing the caller can do about it. */
export type ErrorCode =
  | "invalid_input"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "wrong_state"
  | "archive_not_ready"
  | "changes_not_available"
  | "task_on_other_host"
  | "expired"
  | "too_large"
  | "range_not_satisfiable"
  | "tenant_over_limit"
  | "quota_exceeded"
  | "rate_limited"
  | "too_many_streams"
  | "too_many_connections"
  | "idempotency_key_reused"
  | "unsupported_media_type"
  | "request_timeout"
  | "headers_too_large"
  | "shutting_down"
  | "dependency_unavailable"
  | "invalid_config"
  | "internal_error";

/** An error raised on purpose. The message says what went wrong and what to do next. */
export class BerthError extends Error {
  override readonly name = "BerthError";

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Readonly<Record<string, unknown>> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const isBerthError = (value: unknown): value is BerthError => value instanceof BerthError;

/** Why a task ended without succeeding; stored on the task as `reason`. */
export type FailureReason =
  | "timeout"
  | "oom_killed"
  | "disk_limit_exceeded"
  | "canceled"
  | "image_not_found"
  | "output_truncated"
  | "archive_failed"
  | "workspace_failed"
  | "docker_unavailable"
  | "worker_shutdown"
  | "worker_lost"
  | "internal_error";

/** A task-level failure with the reason recorded on the task. */
export class TaskFailure extends Error {
  override readonly name = "TaskFailure";

  constructor(
    readonly reason: FailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const taskNotFound = (taskId: string): BerthError =>
  new BerthError("not_found", `No task "${taskId}". Check the id, or list your tasks with GET /v1/tasks.`, { taskId });

export const invalidInput = (message: string, details: Record<string, unknown> = {}): BerthError =>
  new BerthError("invalid_input", message, details);

/** Extracts a numeric `statusCode` from errors thrown by HTTP-ish clients (dockerode). */
export const statusOf = (err: unknown): number | undefined =>
  typeof err === "object" && err !== null && "statusCode" in err && typeof err.statusCode === "number" ? err.statusCode : undefined;

export const errnoOf = (err: unknown): string | undefined =>
  typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined;
