// Task record → the task view clients see (shared/API.md §3).
import type { TaskView } from "../contract/types.js";
import type { TaskRecord } from "../domain/task.js";

const iso = (ms: number | null) => (ms == null ? null : new Date(ms).toISOString());

export function toView(r: TaskRecord): TaskView {
  const self = `/v1/tasks/${r.id}`;
  return {
    id: r.id,
    workspace: r.workspace,
    status: r.status,
    image: r.image,
    command: r.command,
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
    links: { self, logs: `${self}/logs`, archive: `${self}/archive`, files: `${self}/files` },
  };
}
