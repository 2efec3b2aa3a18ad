// Live worker processes: each keeps a heartbeat key that expires unless renewed. A container labelled with a
// worker that has no heartbeat is an orphan (queue/orphans.ts).
import type { Redis } from "ioredis";
import type { Keys } from "./keys.js";

/** How long a heartbeat lives without renewal; a worker renews it three times as often. */
export const HEARTBEAT_TTL_SECONDS = 30;

export class WorkerRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** Marks `workerId` alive for the next HEARTBEAT_TTL_SECONDS. */
  async beat(workerId: string): Promise<void> {
    await this.redis.set(this.keys.workerHeartbeat(workerId), String(Date.now()), "EX", HEARTBEAT_TTL_SECONDS);
  }

  /** Whether `workerId` has beaten within HEARTBEAT_TTL_SECONDS (and not left). */
  async isAlive(workerId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.workerHeartbeat(workerId))) === 1;
  }

  /** Removes `workerId`'s heartbeat (a clean stop): its containers count as orphans from now on. */
  async remove(workerId: string): Promise<void> {
    await this.redis.del(this.keys.workerHeartbeat(workerId));
  }
}
