// DELETE /v1/tasks/:id: removing what a finished task left (workspace on this host, archive, log stream) and its
// record. The scheduled cleanup and `berth workspace remove` do the same for many tasks at once (sweep.ts).
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { isFinalStatus } from "../contract/types.js";
import type { TaskRecord } from "../domain/task.js";
import { BerthError, taskNotFound } from "../errors.js";
import { removeTrees, workspacePath } from "../workspace/workspace.js";

/**
 * Deletes the task's workspace (if on this host's disk), its archive (from the archive store: on this host's disk,
 * or the object every host shares) and its log stream. Only for finished tasks: a running container may still
 * write into the workspace.
 */
export async function removeTaskFiles(deps: Deps, services: Services, record: TaskRecord): Promise<void> {
  if (!isFinalStatus(record.status)) throw new Error(`task ${record.id} is ${record.status}; its files cannot be removed yet`);
  const ws = workspacePath(deps.config.dirs.workspaces, record.workspace);
  const err = (await removeTrees([ws])).get(ws) ?? (await deps.archives.remove([record.workspace])).get(record.workspace);
  if (err) throw err;
  await services.logs.remove(record.id);
}

/** DELETE /v1/tasks/:id: cancels if needed, waits for the task to end, then removes its files, logs and record. */
export async function deleteTask(deps: Deps, services: Services, tenant: string, id: string): Promise<void> {
  let record = await services.store.getForTenant(tenant, id);
  if (!record) throw taskNotFound(id);
  if (!isFinalStatus(record.status)) {
    record = await services.queue.cancel(tenant, id).catch((err: unknown) => {
      // It may have finished between our read and the cancel: that is fine, carry on deleting.
      if (err instanceof BerthError && err.code === "wrong_state") return record as TaskRecord;
      throw err;
    });
    const deadline = Date.now() + (deps.config.worker.stopGraceSeconds + 30) * 1000;
    while (record && !isFinalStatus(record.status)) {
      if (Date.now() > deadline) {
        throw new BerthError("wrong_state", `Task "${id}" is still stopping; retry the delete in a few seconds.`, { retryAfterSeconds: 5 });
      }
      await new Promise((r) => setTimeout(r, 200));
      record = await services.store.get(id);
    }
    if (!record) return;
  }
  await waitForEndOfLog(services, record);
  await removeTaskFiles(deps, services, record);
  await services.usage.debit([record]);
  await services.store.remove(record);
}

/**
 * Whoever ends a task (the worker, or a cancel of a queued task) records the final status first and appends the
 * log's end marker just after, retrying through a Redis hiccup. Removing the log stream in between would be undone
 * by that append, leaving a stream no record points to and nothing ever expires. So for a task that finished
 * moments ago, wait (briefly, bounded) until the end marker is there.
 */
async function waitForEndOfLog(services: Services, record: TaskRecord): Promise<void> {
  if (record.status === "expired" || record.finishedAtMs == null || Date.now() - record.finishedAtMs > 60_000) return;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (await services.logs.hasEnded(record.id)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}
