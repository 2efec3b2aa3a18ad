// The expiry index: a sorted set of finished tasks scored by when cleanup should next look at them (ms). Cleanup
// reads the tasks that are due and repairs entries whose score disagrees with their record.
import type { RedisConnection } from "./redis.js";
import type { Keys } from "./keys.js";

/** A correction of one index entry: a new score, or null to drop the entry (its task is gone). */
export interface ExpiryFix {
  readonly id: string;
  readonly score: number | null;
}

export class ExpiryIndex {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /** Ids of tasks due at `nowMs` (score ≤ nowMs), earliest first, at most `limit`. */
  due(nowMs: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.expiry, "-inf", nowMs, "LIMIT", 0, limit);
  }

  /** Applies one fix. A new score only replaces an entry that still exists (XX): a task purged meanwhile stays out. */
  async fix(fix: ExpiryFix): Promise<void> {
    if (fix.score === null) await this.redis.zrem(this.keys.expiry, fix.id);
    else await this.redis.zadd(this.keys.expiry, "XX", fix.score, fix.id);
  }
}
