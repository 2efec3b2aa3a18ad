// Task record → the task view clients see (shared/API.md §3): in API answers, webhook bodies and the results of
// submit-queue jobs alike.
import type { TaskView } from "../contract/types.js";
import type { TaskRecord } from "./task.js";

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
    webhook: r.webhook ?? null,
    queueJobId: r.queueJobId ?? null,
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

/** A webhook's body: the task view without `webhook`, which describes the very delivery that carries it. */
export function webhookPayload(r: TaskRecord): Omit<TaskView, "webhook"> {
  const { webhook: _delivery, ...view } = toView(r);
  return view;
}
