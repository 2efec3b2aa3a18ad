// The per-task cleanup lock: whoever holds a task's lock (any host, any process) is the only one removing that
// task's files or changing its record for cleanup. Many locks are taken or released in one round trip.
import { randomBytes } from "node:crypto";
import type { RedisConnection } from "./redis.js";
import type { Keys } from "./keys.js";

/** Deletes the lock only if it still holds our token: a lock that expired and was taken by another is left alone. */
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/** A lock this process holds: release it with the same token. */
export interface HeldLock {
  readonly id: string;
  readonly token: string;
}

export class CleanupLocks {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /**
   * Tries to take each task's lock (SET NX PX `ttlMs`) in one round trip. Per id, in order: the lock now held,
   * null when another holds it, or the error Redis answered for that id.
   */
  async acquire(ids: readonly string[], ttlMs: number): Promise<(HeldLock | null | Error)[]> {
    if (ids.length === 0) return [];
    const tokens = ids.map(() => randomBytes(12).toString("hex"));
    const rows =
      (await this.redis.pipeline(ids.map((id, k) => ["set", this.keys.cleanupLock(id), tokens[k], "PX", ttlMs, "NX"])).exec()) ?? [];
    return ids.map((id, k) => {
      const [err, res] = rows[k] ?? [new Error("no reply from Redis"), null];
      if (err) return err;
      return res === "OK" ? { id, token: tokens[k] as string } : null;
    });
  }

  /** Releases held locks in one round trip; a lock that has meanwhile expired and passed to another stays theirs. */
  async release(locks: readonly HeldLock[]): Promise<void> {
    if (locks.length === 0) return;
    await this.redis.pipeline(locks.map((l) => ["eval", RELEASE, 1, this.keys.cleanupLock(l.id), l.token])).exec();
  }
}
