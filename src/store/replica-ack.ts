// Redis replicates asynchronously: after a Sentinel failover the promoted replica may lack the last writes the old
// master acknowledged. A task created, started or ended in such a write would be lost or, worse, delivered again
// by BullMQ and run twice. So behind Sentinel, berth confirms such a change with `WAIT 1 <ms>` (a replica holds
// every write of this connection up to it) before it acts on it: answers 202, starts a container, or lets BullMQ
// complete the job.
//
// WAIT blocks the connection until a replica answers, so a master without a healthy replica would make every
// confirmation wait the whole timeout: after one that no replica acknowledged, confirmations are skipped for a
// while and the degraded state is logged once (a master with no replica has nothing to fail over to).
import type { Redis } from "ioredis";
import type { Logger } from "pino";

/** How long one confirmation waits for a replica. */
export const ACK_TIMEOUT_MS = 1000;
/** After a confirmation no replica answered, how long berth goes on without waiting before it tries again. */
export const DEGRADED_SKIP_MS = 5000;

const attached = new WeakMap<object, ReplicaAck>();

export class ReplicaAck {
  private skipUntil = 0;
  private degraded = false;

  private constructor(
    private readonly redis: Redis,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  /** Makes {@link confirm} wait for a replica on `redis` (a connection to a Sentinel-managed master). */
  static attach(redis: Redis, logger: Logger, now: () => number = Date.now): ReplicaAck {
    const ack = new ReplicaAck(redis, logger, now);
    attached.set(redis, ack);
    return ack;
  }

  /** The confirmer attached to `redis`, if any. */
  static of(redis: object): ReplicaAck | undefined {
    return attached.get(redis);
  }

  /**
   * Resolves once a replica acknowledged every earlier write of this connection, or when none did within
   * ACK_TIMEOUT_MS (logged; berth goes on). Rejects only when Redis itself cannot be reached: the writes are then
   * in doubt, and the caller treats them as failed.
   */
  async confirm(): Promise<void> {
    if (this.now() < this.skipUntil) return;
    const acked = Number(await this.redis.call("WAIT", "1", String(ACK_TIMEOUT_MS)));
    if (acked >= 1) {
      if (this.degraded) this.logger.info("a replica acknowledges writes again; task changes are confirmed before berth acts on them");
      this.degraded = false;
      return;
    }
    this.skipUntil = this.now() + DEGRADED_SKIP_MS;
    if (!this.degraded) {
      this.logger.warn(
        { timeoutMs: ACK_TIMEOUT_MS },
        "no replica acknowledged a write; until one does, a failover may lose the latest task changes",
      );
    }
    this.degraded = true;
  }
}
