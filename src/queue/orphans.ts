// Containers nobody watches any more: their worker process died (SIGKILL, host crash) without removing them.
// Each worker keeps a heartbeat (store/worker-registry.ts); a berth container whose worker has none is stopped and
// removed. The task itself is then recorded by BullMQ's stall handling: its job comes back and is recorded as
// worker_lost.
import type { Logger } from "pino";
import type { Deps } from "../app/deps.js";
import { LABEL_NAMESPACE, LABEL_WORKER, taskIdOf } from "../runner/labels.js";
import { HEARTBEAT_TTL_SECONDS, type WorkerRegistry } from "../store/worker-registry.js";

/** Keeps one worker's heartbeat alive while it runs. */
export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly registry: WorkerRegistry,
    readonly workerId: string,
  ) {}

  async start(): Promise<void> {
    await this.registry.beat(this.workerId);
    this.timer = setInterval(() => void this.registry.beat(this.workerId).catch(() => undefined), (HEARTBEAT_TTL_SECONDS / 3) * 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.registry.remove(this.workerId).catch(() => undefined);
  }
}

/**
 * Removes this namespace's containers whose worker is gone. Returns the task ids whose containers were removed ("" for
 * a warm pool's container that no task had claimed).
 */
export async function reapOrphans(
  deps: Deps,
  registry: WorkerRegistry,
  log: Logger,
  selfId: string,
  /** Whether this worker still watches the container: a task it runs, or its warm pool's. */
  isOwn: (c: { id: string; name: string; labels: Record<string, string> }) => boolean,
): Promise<string[]> {
  const reaped: string[] = [];
  for (const c of await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: deps.namespace })) {
    const taskId = taskIdOf(deps.namespace, c);
    const worker = c.labels[LABEL_WORKER];
    if (isOwn(c)) continue;
    // This worker's own container for a task it no longer runs (its removal failed while the engine was away),
    // or a container whose worker has no heartbeat: nobody watches it.
    const alive = worker !== undefined && worker !== selfId && (await registry.isAlive(worker));
    if (alive) continue;
    try {
      // Listed a moment ago: its task may have ended and removed it since (then there is nothing to say).
      if (!(await deps.runtime.removeById(c.id, c.running ? deps.config.worker.stopGraceSeconds : 0))) continue;
    } catch (err) {
      // The others are still swept; this one is tried again by the next sweep.
      log.warn({ err, containerId: c.id, taskId, worker }, "could not remove a container whose worker is gone; will retry");
      continue;
    }
    log.warn({ containerId: c.id, taskId, worker, running: c.running }, "removed a container whose worker is gone");
    reaped.push(taskId);
  }
  return reaped;
}
