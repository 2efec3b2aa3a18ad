// The client SDK's public surface. Explicit named exports only: nothing becomes public by accident.
export { DEFAULT_BERTH_URL } from "../contract/types.js";
export { BerthClient } from "./client.js";
export type { AuditOptions, BerthClientOptions, FileListing, ListTasksOptions, WaitOptions } from "./client.js";
export type { DownloadProgress, DownloadResult, DownloadStreamOptions, DownloadToFileOptions } from "./download.js";
export { BerthApiError, UNREACHABLE, isBerthApiError } from "./errors.js";
export type { FollowEndEvent, FollowEvent, FollowLogEvent, FollowOptions } from "./follow.js";
export type { ReconnectOptions } from "./reconnect.js";
export { FrameParser } from "./output.js";
export type { FollowOutputOptions, OutputChunk, OutputEnd, OutputEvent } from "./output.js";
export { SseParser } from "./sse.js";
export type { SseMessage, SseParserOptions } from "./sse.js";
export { FINAL_STATUSES, TASK_STATUSES, isFinalStatus } from "../contract/types.js";
export type {
  ArchiveInfo,
  AuditAction,
  AuditEntry,
  AuditPage,
  ChangeEntry,
  ChangeKind,
  ChangeList,
  ChangeSummary,
  EndEvent,
  ErrorBody,
  FileEntry,
  LogEvent,
  LogStream,
  ManifestEntryType,
  ServerInfo,
  SubmitTaskRequest,
  TaskLimits,
  TaskList,
  TaskStatus,
  TaskUsage,
  TaskView,
  TenantUsage,
} from "../contract/types.js";
