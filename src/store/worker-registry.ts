// Live worker processes: each keeps a heartbeat key that expires unless renewed. A container labelled with a
// worker that has no heartbeat is an orphan (queue/orphans.ts). A worker host that serves its workspaces to other
// hosts (BERTH_ADVERTISE_URL) renews its address with the same beat, so the address lives exactly as long.
import type { RedisConnection } from "./redis.js";
import type { Keys } from "./keys.js";

/** How long a heartbeat lives without renewal; a worker renews it three times as often. */
export const HEARTBEAT_TTL_SECONDS = 30;

/** What a worker host tells the others: its identity (BERTH_NODE_ID) and where it answers (BERTH_ADVERTISE_URL). */
export interface Advertisement {
  readonly nodeId: string;
  readonly url: string;
}

export class WorkerRegistry {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly advertisement: Advertisement | null = null,
  ) {}

  /** Marks `workerId` alive (and this host's address known) for the next HEARTBEAT_TTL_SECONDS. */
  async beat(workerId: string): Promise<void> {
    const now = String(Date.now());
    if (!this.advertisement) {
      await this.redis.set(this.keys.workerHeartbeat(workerId), now, "EX", HEARTBEAT_TTL_SECONDS);
      return;
    }
    const { nodeId, url } = this.advertisement;
    // Two commands, not MULTI: the keys need not share a slot (Redis Cluster), and each stands on its own.
    await Promise.all([
      this.redis.set(this.keys.workerHeartbeat(workerId), now, "EX", HEARTBEAT_TTL_SECONDS),
      this.redis.set(this.keys.nodeAddress(nodeId), url, "EX", HEARTBEAT_TTL_SECONDS),
    ]);
  }

  /** Whether `workerId` has beaten within HEARTBEAT_TTL_SECONDS (and not left). */
  async isAlive(workerId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.workerHeartbeat(workerId))) === 1;
  }

  /** The URL host `nodeId` advertised with its last beat, or null (none, or it has not beaten for a while). */
  async addressOf(nodeId: string): Promise<string | null> {
    return this.redis.get(this.keys.nodeAddress(nodeId));
  }

  /** Removes `workerId`'s heartbeat (a clean stop): its containers count as orphans from now on. */
  async remove(workerId: string): Promise<void> {
    await this.redis.del(this.keys.workerHeartbeat(workerId));
  }
}
