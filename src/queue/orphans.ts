// Containers nobody watches any more: their worker process died (SIGKILL, host crash) without removing them.
// Each worker keeps a heartbeat key; a berth container whose worker has no heartbeat is stopped and removed.
// The task itself is then recorded by BullMQ's stall handling: its job comes back and is recorded as worker_lost.
import type { Logger } from "pino";
import type { Deps } from "../app/deps.js";
import { LABEL_NAMESPACE, LABEL_TASK_ID, LABEL_WORKER } from "../runner/labels.js";
import type { Keys } from "../store/keys.js";

export const HEARTBEAT_TTL_SECONDS = 30;

export class Heartbeat {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: Deps,
    private readonly keys: Keys,
    readonly workerId: string,
  ) {}

  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => void this.beat().catch(() => undefined), (HEARTBEAT_TTL_SECONDS / 3) * 1000);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    await this.deps.redis.set(this.keys.workerHeartbeat(this.workerId), String(Date.now()), "EX", HEARTBEAT_TTL_SECONDS);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.deps.redis.del(this.keys.workerHeartbeat(this.workerId)).catch(() => undefined);
  }
}

/** Removes this namespace's containers whose worker is gone. Returns the task ids whose containers were removed. */
export async function reapOrphans(
  deps: Deps,
  keys: Keys,
  log: Logger,
  selfId: string,
  isOwnTask: (taskId: string) => boolean,
): Promise<string[]> {
  const reaped: string[] = [];
  for (const c of await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: deps.namespace })) {
    const taskId = c.labels[LABEL_TASK_ID] ?? "";
    const worker = c.labels[LABEL_WORKER];
    if (isOwnTask(taskId)) continue;
    // This worker's own container for a task it no longer runs (its removal failed while the engine was away),
    // or a container whose worker has no heartbeat: nobody watches it.
    const alive = worker !== undefined && worker !== selfId && (await deps.redis.exists(keys.workerHeartbeat(worker))) === 1;
    if (alive) continue;
    log.warn({ containerId: c.id, taskId, worker, running: c.running }, "removing a container whose worker is gone");
    await deps.runtime.removeById(c.id, c.running ? deps.config.worker.stopGraceSeconds : 0);
    reaped.push(taskId);
  }
  return reaped;
}
