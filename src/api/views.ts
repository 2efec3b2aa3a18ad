// Task record → the task view clients see (shared/API.md §3), whole or as a list entry of bounded size.
import type { TaskView } from "../contract/types.js";
import type { TaskRecord } from "../domain/task.js";
import type { TaskSummary } from "../store/task-store.js";

/** Record fields stored longer than this are left out of list entries (labels excepted: at most ~10 KiB). */
export const LIST_FIELD_MAX_BYTES = 4096;

const iso = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());

export function toView(r: TaskRecord): TaskView {
  const self = `/v1/tasks/${r.id}`;
  return {
    id: r.id,
    workspace: r.workspace,
    status: r.status,
    image: r.image,
    command: r.command,
    commandTruncated: false,
    labels: r.labels,
    createdAt: new Date(r.createdAtMs).toISOString(),
    startedAt: iso(r.startedAtMs),
    finishedAt: iso(r.finishedAtMs),
    expiresAt: iso(r.expiresAtMs),
    exitCode: r.exitCode,
    reason: r.reason,
    message: r.message,
    timeoutSeconds: r.timeoutSeconds,
    limits: r.limits,
    network: r.network,
    archive: r.archive,
    archiveSkipped: r.archiveSkipped ?? [],
    outputTruncated: r.outputTruncated ?? false,
    host: r.host ?? null,
    tenant: r.tenant,
    caches: [...(r.caches ?? [])],
    usage: r.usage ?? null,
    workspaceBytes: r.workspaceBytes ?? null,
    changes: r.changes ?? null,
    links: {
      self,
      logs: `${self}/logs`,
      archive: `${self}/archive`,
      files: `${self}/files`,
      changes: `${self}/changes`,
      diff: `${self}/diff`,
    },
  };
}

/**
 * A list entry: the view of a record read without its large fields. A long command shows its start
 * (`commandTruncated`); any other field left out is empty and named in `omitted`.
 */
export function toListView(s: TaskSummary): TaskView {
  const left = new Set(s.leftOut);
  const view = toView({
    ...s,
    command: left.has("command") ? (s.commandPreview ?? []) : s.command,
    message: left.has("message") ? null : s.message,
    archiveSkipped: left.has("archiveSkipped") ? [] : s.archiveSkipped,
  });
  view.commandTruncated = left.has("command");
  const omitted = [...left].filter((f) => f !== "command" && f !== "commandPreview");
  if (omitted.length > 0) view.omitted = omitted;
  return view;
}
