// The stores and the queue, built on one Deps; shared by the API, the worker and the CLI's local commands.
import type { RedisConnection } from "../store/redis.js";
import type { Deps } from "./deps.js";
import { LogStore } from "../logs/log-store.js";
import { TaskQueue } from "../queue/queue.js";
import { TaskEndings } from "../queue/task-endings.js";
import { CleanupLocks } from "../store/cleanup-locks.js";
import { ExpiryIndex } from "../store/expiry-index.js";
import { createKeys, type Keys } from "../store/keys.js";
import { TaskStore } from "../store/task-store.js";
import { WorkerRegistry } from "../store/worker-registry.js";
import { UsageStore } from "../store/usage-store.js";

export interface Services {
  readonly keys: Keys;
  readonly store: TaskStore;
  readonly logs: LogStore;
  readonly queue: TaskQueue;
  /** What follows a task's final status: metrics, its webhook, the submit job that created it. */
  readonly endings: TaskEndings;
  /** Per-task locks taken by every cleanup (scheduled, operator, on any host). */
  readonly locks: CleanupLocks;
  /** Finished tasks by when cleanup should look at them. */
  readonly expiry: ExpiryIndex;
  /** Live workers and the addresses their hosts advertise (read by API processes). */
  readonly workers: WorkerRegistry;
  /** Each tenant's stored bytes, CPU time and shared caches. */
  readonly usage: UsageStore;
}

/** `queueConnection` is handed to BullMQ's Queue; by default the shared fail-fast connection. */
export function createServices(deps: Deps, queueConnection: RedisConnection = deps.redis): Services {
  const keys = createKeys(deps.namespace, { cluster: deps.config.redis.kind === "cluster" });
  const store = new TaskStore(deps.redis, keys);
  const logs = new LogStore(deps.redis, keys);
  const endings = new TaskEndings(deps, store, keys, queueConnection);
  const queue = new TaskQueue(deps, keys, store, logs, endings, queueConnection);
  deps.metrics.countTasksWith(() => queue.taskCounts());
  return {
    keys,
    store,
    logs,
    queue,
    endings,
    locks: new CleanupLocks(deps.redis, keys),
    expiry: new ExpiryIndex(deps.redis, keys),
    workers: new WorkerRegistry(deps.redis, keys),
    usage: new UsageStore(deps.redis, keys),
  };
}
