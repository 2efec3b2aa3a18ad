// Wire types of the HTTP API (shared/API.md §3), shared by the server and the client SDK.
// Imports nothing: the published client must not pull in server dependencies.

export const TASK_STATUSES = ["queued", "running", "succeeded", "failed", "timed_out", "canceled", "expired"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

/** Statuses after which a task never changes again (except to `expired`). */
export const FINAL_STATUSES: readonly TaskStatus[] = ["succeeded", "failed", "timed_out", "canceled", "expired"];
export const isFinalStatus = (s: TaskStatus): boolean => FINAL_STATUSES.includes(s);
/** Where clients look for the server when no URL is given. */
export const DEFAULT_BERTH_URL = "http://127.0.0.1:8080";
/** Longest long poll `GET /v1/tasks/:id?waitSeconds=N` accepts (below the idle timeouts of common proxies). */
export const MAX_WAIT_SECONDS = 60;

export interface TaskLimits {
  memoryMb?: number;
  cpus?: number;
  pids?: number;
  /** Most the workspace may hold, in MB (MiB); past it the task is stopped and fails with `disk_limit_exceeded`. */
  diskMb?: number;
}

/** Body of `POST /v1/tasks`. Only `command` is required. */
export interface SubmitTaskRequest {
  command: string[];
  image?: string;
  env?: Record<string, string>;
  /** Relative path → UTF-8 content, written into the workspace before the task starts. */
  files?: Record<string, string>;
  fromTask?: string;
  timeoutSeconds?: number;
  limits?: TaskLimits;
  network?: "none" | "bridge";
  ttlSeconds?: number;
  labels?: Record<string, string>;
  idempotencyKey?: string;
  /** The tenant's shared caches to mount read-write at /cache/<name>, persistent across its tasks. */
  caches?: string[];
  /** Where to POST the task view, signed per Standard Webhooks, when the task ends (else the tenant's default). */
  webhook?: { url: string };
}

export const WEBHOOK_STATUSES = ["pending", "delivered", "failed"] as const;
export type WebhookStatus = (typeof WEBHOOK_STATUSES)[number];

/** How the task's end is being announced to its webhook. */
export interface WebhookState {
  status: WebhookStatus;
  /** Delivery attempts made so far. */
  attempts: number;
  /** Why the latest attempt failed (null after a success, or before any attempt). */
  lastError: string | null;
}

export interface ArchiveInfo {
  bytes: number;
  sha256: string;
}

/** What a task's processes used in all, read from the kernel's accounting when it ended. */
export interface TaskUsage {
  /** CPU time, user and system, in seconds (millisecond precision). */
  cpuSeconds: number;
  /** Most memory charged at once, page cache included; null where the kernel does not say. */
  peakMemoryBytes: number | null;
}

export interface TaskView {
  id: string;
  workspace: string;
  status: TaskStatus;
  image: string;
  command: string[];
  /** True when `command` is only its start (list entries cut long commands; GET the task for all of it). */
  commandTruncated: boolean;
  labels: Record<string, string>;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  expiresAt: string | null;
  exitCode: number | null;
  reason: string | null;
  /** Human-readable detail for `reason`, when there is one. */
  message: string | null;
  timeoutSeconds: number;
  limits: Required<TaskLimits>;
  network: "none" | "bridge";
  archive: ArchiveInfo | null;
  /** What the archive left out (FIFOs, sockets, unreadable or oversized files). */
  archiveSkipped: { path: string; why: string }[];
  outputTruncated: boolean;
  /** The host (its BERTH_NODE_ID) that runs or ran the task; null while it is queued. */
  host: string | null;
  /** The tenant the task belongs to (its own key's, or any for an admin key). */
  tenant: string;
  /** The tenant's shared caches it mounts at /cache/<name>. */
  caches: string[];
  /** What the task used, once it has ended (null before, and where the server cannot read it). */
  usage: TaskUsage | null;
  /** Bytes of the regular files its workspace held when it was archived (null until then, or if it was not). */
  workspaceBytes: number | null;
  /**
   * Once the task has ended: what it changed in its workspace, counted (`GET /v1/tasks/:id/changes` lists it).
   * Null before, and for a task whose changes were not recorded.
   */
  changes: ChangeSummary | null;
  /** The webhook announcing the task's end; null when the task has none. */
  webhook: WebhookState | null;
  /** Id of the BullMQ job of the `submit` queue that created the task; null when it came over HTTP. */
  queueJobId: string | null;
  links: { self: string; logs: string; archive: string; files: string; changes: string; diff: string };
  /**
   * List entries only: fields left out because they are too large for a list (their values are empty here);
   * GET the task for them.
   */
  omitted?: string[];
}

export interface TaskList {
  tasks: TaskView[];
  nextCursor: string | null;
}

export type LogStream = "stdout" | "stderr" | "system";

export interface LogEvent {
  stream: LogStream;
  text: string;
  time: string;
}

export interface EndEvent {
  status: TaskStatus;
  exitCode: number | null;
}

export interface FileEntry {
  path: string;
  type: "file" | "dir" | "symlink";
  size: number;
}

/** What a workspace path is, in manifests and change lists (FIFOs, sockets and devices are listed, never archived). */
export type ManifestEntryType = "file" | "dir" | "symlink" | "fifo" | "socket" | "device";

export type ChangeKind = "added" | "modified" | "deleted" | "type_changed";

/** How many paths a task added, modified, deleted or turned into another type, and how many bytes it added and removed. */
export interface ChangeSummary {
  added: number;
  modified: number;
  deleted: number;
  typeChanged: number;
  /**
   * Bytes of files and link targets added: an added path's size, a modified one's growth. `bytesAdded -
   * bytesRemoved` is how much the workspace's files grew.
   */
  bytesAdded: number;
  /** Bytes removed: a deleted path's size, a modified one's shrinking. */
  bytesRemoved: number;
}

/** One changed path of `GET /v1/tasks/:id/changes`. */
export interface ChangeEntry {
  path: string;
  change: ChangeKind;
  /** The type now; a deleted path's type before. */
  type: ManifestEntryType;
  /** Bytes now (null once deleted): a file's size, a symbolic link's target length, 0 for the rest. */
  size: number | null;
  /** Bytes before (null when added). */
  previousSize: number | null;
  /** For `type_changed`: the type before. */
  previousType?: ManifestEntryType;
}

/** `GET /v1/tasks/:id/changes`: one page of the change list, in path order, and the whole list's summary. */
export interface ChangeList {
  changes: ChangeEntry[];
  summary: ChangeSummary;
  /** Pass as `?cursor=` for the next page; null on the last. */
  nextCursor: string | null;
}

export interface ErrorBody {
  error: { code: string; message: string };
}

/** `GET /v1/info`: what this server accepts, for forms and clients that want to check before they submit. */
export interface ServerInfo {
  /** The tenant the caller's key names ("default" on a server without keys); null for an admin key. */
  tenant: string | null;
  /** Whether the key is an admin's: it sees, cancels and deletes every tenant's tasks, and submits none. */
  admin: boolean;
  /** For an admin key: the tenants this server has keys for. */
  tenants?: string[];
  /** Whether the server needs an API key at all. */
  keysRequired: boolean;
  images: { default: string /** Patterns; `*` matches any run of characters. */; allowed: string[] };
  timeoutSeconds: { default: number; max: number };
  ttlSeconds: { default: number; max: number };
  limits: { default: Required<TaskLimits>; max: Required<TaskLimits> };
  networkBridgeAllowed: boolean;
  /** Largest request body (a submit with its files), in bytes. */
  maxBodyBytes: number;
  /** Output kept per task, in bytes. */
  maxOutputBytes: number;
  /** Queued + running tasks the tenant may have. */
  maxActiveTasks: number;
}

/** `GET /v1/usage`: what a tenant has running and stored now, and the CPU time its tasks used in a window. */
export interface TenantUsage {
  tenant: string;
  queued: number;
  running: number;
  /** Bytes held now: finished tasks' workspaces and archives (until cleanup removes them), and shared caches. */
  storedBytes: { workspaces: number; archives: number; caches: number; total: number };
  /** CPU seconds of the tasks that ended since `since`. */
  cpuSeconds: number;
  /** Start of the CPU window (ISO-8601): `?since=`, by default 30 days back, never before the records kept. */
  since: string;
  limits: {
    /** BERTH_TENANT_MAX_STORED_BYTES (null: no limit); at or above it, submits answer 429 quota_exceeded. */
    maxStoredBytes: number | null;
    /** Queued + running tasks the tenant may have. */
    maxActiveTasks: number;
  };
}

/** What an audit entry records: the request's action (admin keys' other requests are `admin_*`). */
export type AuditAction =
  | "submit"
  | "cancel"
  | "delete"
  | "archive_download"
  | "file_read"
  | "webhook_change"
  | "auth_failure"
  | "admin_task_list"
  | "admin_task_read"
  | "admin_log_read"
  | "admin_file_list"
  | "admin_usage_read"
  | "admin_audit_read"
  | "admin_events"
  | "admin_request";

/** One entry of the audit trail (`GET /v1/audit`): who did what, from where, to which task, and how it went. */
export interface AuditEntry {
  /** Opaque, increasing with time; `?cursor=` continues after it (to older entries). */
  id: string;
  time: string;
  action: AuditAction;
  /** Whose task or data it concerned (null: none in particular, e.g. a failed authentication). */
  tenant: string | null;
  /** Who acted: a tenant's key, an admin key, or a caller whose key was not accepted. */
  actor: "tenant" | "admin" | "unknown";
  /** The start of the key's SHA-256 (never the key); null without one. */
  keyId: string | null;
  remoteAddress: string;
  requestId: string;
  taskId: string | null;
  outcome: "ok" | "denied" | "failed";
  /** The HTTP status answered. */
  status: number;
  method: string;
  /** The route, e.g. `/v1/tasks/:id/archive` (never the query). */
  route: string;
}

/** `GET /v1/audit`: entries newest first. */
export interface AuditPage {
  entries: AuditEntry[];
  nextCursor: string | null;
}

/** `GET /v1/events` `counts` event: the tenant's tasks waiting and running now. */
export interface TaskCounts {
  queued: number;
  running: number;
}
