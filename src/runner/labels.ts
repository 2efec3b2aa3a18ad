// berth.* container labels: how berth recognises its own containers (orphan sweep, tests' leak checks).
export const LABEL_MANAGED = "berth.managed";
export const LABEL_NAMESPACE = "berth.namespace";
export const LABEL_TASK_ID = "berth.task-id";
export const LABEL_TENANT = "berth.tenant";
export const LABEL_HOST = "berth.host";
/** The worker process that runs the container; its liveness is a heartbeat key in Redis. */
export const LABEL_WORKER = "berth.worker";

export const taskLabels = (ctx: {
  namespace: string;
  taskId: string;
  tenant: string;
  host: string;
  workerId: string;
}): Record<string, string> => ({
  [LABEL_MANAGED]: "true",
  [LABEL_NAMESPACE]: ctx.namespace,
  [LABEL_TASK_ID]: ctx.taskId,
  [LABEL_TENANT]: ctx.tenant,
  [LABEL_HOST]: ctx.host,
  [LABEL_WORKER]: ctx.workerId,
});

/** Container names are derived from the task id, so a second run of the same task collides (409) instead of running twice. */
export const containerName = (namespace: string, taskId: string): string => `${namespace}-task-${taskId}`;

/** On a warm pool's container: the profile it was started for. Such a container has no task id label. */
export const LABEL_POOL = "berth.pool";

export const poolLabels = (ctx: { namespace: string; host: string; workerId: string; profile: string }): Record<string, string> => ({
  [LABEL_MANAGED]: "true",
  [LABEL_NAMESPACE]: ctx.namespace,
  [LABEL_HOST]: ctx.host,
  [LABEL_WORKER]: ctx.workerId,
  [LABEL_POOL]: ctx.profile,
});

export const poolContainerName = (namespace: string, slot: string): string => `${namespace}-pool-${slot}`;

/**
 * The task a container runs: its label, or, for a warm container (labels are fixed when it was created, before any
 * task), the name it was given when a task claimed it. "" for an unclaimed warm container.
 */
export function taskIdOf(namespace: string, c: { readonly name: string; readonly labels: Readonly<Record<string, string>> }): string {
  const label = c.labels[LABEL_TASK_ID];
  if (label) return label;
  const prefix = containerName(namespace, "");
  return c.name.startsWith(prefix) ? c.name.slice(prefix.length) : "";
}
