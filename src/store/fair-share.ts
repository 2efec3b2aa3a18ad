// Fair scheduling across tenants on BullMQ's job priorities (lower starts sooner, first in first out within one).
//
// A task's priority is its place in its tenant's own queue: 1 + the tenant's queued tasks ahead of it. Every tenant's
// first queued task has priority 1, its second 2, and so on, so the queue takes one task of each tenant in turn
// (round robin), however long one tenant's queue is: a tenant's first task waits behind at most one task of each
// other tenant, plus what is already running. A priority is never lower than the tenant's newest queued task's,
// so a tenant's own tasks still start in the order it submitted them.
//
// State: per tenant, a zset of its queued task ids scored by priority. A task leaves it when it starts or is
// canceled; a member left behind (a crash between the two writes) only makes that tenant's own next priorities a
// little larger, and is dropped the next time the tenant submits, once it is the oldest. Every command touches one
// key, and the zset shares the records' hash slot (keys.ts), so the prune's pipeline works on a Cluster too: this
// works on one Redis, with Sentinel, or on a Cluster, from any number of API and worker processes.
import type { Keys } from "./keys.js";
import type { RedisConnection } from "./redis.js";

/** BullMQ's largest job priority (2^21). */
export const MAX_PRIORITY = 2_097_152;
/** Members checked per submit when dropping ones that are no longer queued. */
const PRUNE_BATCH = 8;

// KEYS[1]: the tenant's queued zset. ARGV: task id, largest priority. Returns the task's priority.
const ASSIGN = `
local queued = redis.call('ZCARD', KEYS[1])
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local p = queued + 1
if newest[2] and tonumber(newest[2]) > p then p = tonumber(newest[2]) end
if p > tonumber(ARGV[2]) then p = tonumber(ARGV[2]) end
redis.call('ZADD', KEYS[1], p, ARGV[1])
return p
`;

type Script = (numKeys: number, ...args: string[]) => Promise<unknown>;

export class FairShare {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {
    if (!("berthFairAssign" in redis)) redis.defineCommand("berthFairAssign", { lua: ASSIGN });
  }

  /** Enters a newly queued task in its tenant's queue and returns the BullMQ priority it gets. */
  async assign(tenant: string, taskId: string): Promise<number> {
    await this.prune(tenant);
    const script = (this.redis as unknown as Record<"berthFairAssign", Script>).berthFairAssign;
    return Number(await script.call(this.redis, 1, this.keys.tenantQueued(tenant), taskId, String(MAX_PRIORITY)));
  }

  /** The task started, was canceled or is gone: it no longer holds a place in its tenant's queue. */
  async leave(tenant: string, taskId: string): Promise<void> {
    await this.redis.zrem(this.keys.tenantQueued(tenant), taskId);
  }

  /**
   * Drops the tenant's oldest members that are no longer queued (tasks start about in priority order, so those
   * left behind surface at the bottom). A status never returns to queued, so a concurrent prune is harmless.
   */
  private async prune(tenant: string): Promise<void> {
    const key = this.keys.tenantQueued(tenant);
    for (;;) {
      const oldest = await this.redis.zrange(key, 0, PRUNE_BATCH - 1);
      if (oldest.length === 0) return;
      const pipe = this.redis.pipeline();
      for (const id of oldest) pipe.hget(this.keys.task(id), "status");
      const statuses = ((await pipe.exec()) ?? []).map(([, status]) => status);
      const gone = oldest.filter((_, i) => statuses[i] !== "queued");
      if (gone.length > 0) await this.redis.zrem(key, ...gone);
      if (gone.length < oldest.length) return;
    }
  }
}
