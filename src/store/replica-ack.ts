// Redis replicates asynchronously: after a Sentinel failover the promoted replica may lack the last writes the old
// master acknowledged. A task created, started or ended in such a write would be lost or, worse, delivered again
// by BullMQ and run twice. So behind Sentinel, berth confirms such a change with `WAIT 1 <ms>` (a replica holds
// every write of this connection up to it) before it acts on it: answers 202, starts a container, or lets BullMQ
// complete the job.
//
// No acknowledgement means one of three things: the replica is slow, a failover is under way (the replica being
// promoted no longer copies the old master, whose last writes will be lost), or there is no replica. berth waits
// (asking again) for up to GRACE_MS: a slow replica catches up; in a failover the sentinels' +switch-master makes
// the connection drop, the pending WAIT fails, and so does the change, which its caller retries on the new master.
// Only a replica missing for longer makes berth go on unconfirmed (a master with no replica has nothing to fail
// over to): logged once, and asked again every DEGRADED_PROBE_MS until a replica answers.
import type { Redis } from "ioredis";
import type { Logger } from "pino";

/** How long one WAIT waits for a replica. */
export const ACK_TIMEOUT_MS = 1000;
/** How long berth keeps asking before it goes on without a replica's confirmation. */
export const GRACE_MS = 10_000;
/** Going on unconfirmed, how often berth checks whether a replica confirms again. */
export const DEGRADED_PROBE_MS = 5000;

const attached = new WeakMap<object, ReplicaAck>();

export class ReplicaAck {
  private degraded = false;
  private nextProbe = 0;
  /** The WAIT on its way, and the one that follows it for those who came later (WAIT blocks the connection). */
  private inFlight: Promise<number> | null = null;
  private next: Promise<number> | null = null;

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
   * Resolves once a replica acknowledged every earlier write of this connection, or, with no replica answering for
   * GRACE_MS, once berth has given up waiting (logged). Rejects when the connection fails meanwhile (a failover):
   * the writes are then in doubt, and the caller treats them as failed.
   */
  async confirm(): Promise<void> {
    const started = this.now();
    for (;;) {
      if (this.degraded && this.now() < this.nextProbe) return;
      const acked = await this.waitSentFromNow();
      if (acked >= 1) {
        if (this.degraded) this.logger.info("a replica confirms writes again; task changes wait for it before berth acts on them");
        this.degraded = false;
        return;
      }
      if (this.degraded) {
        this.nextProbe = this.now() + DEGRADED_PROBE_MS;
        return;
      }
      if (this.now() - started >= GRACE_MS) {
        this.degraded = true;
        this.nextProbe = this.now() + DEGRADED_PROBE_MS;
        this.logger.warn(
          { graceMs: GRACE_MS },
          "no replica has confirmed a write for a while; berth goes on unconfirmed, and a failover now may lose the latest task changes",
        );
        return;
      }
    }
  }

  /**
   * The answer of a WAIT sent after this call, so it covers every write answered before it. Many callers share
   * one: at most one WAIT is on its way and one more waits behind it, however many changes are being confirmed.
   */
  private waitSentFromNow(): Promise<number> {
    if (!this.inFlight) return this.send();
    this.next ??= this.inFlight
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.next = null;
        return this.send();
      });
    return this.next;
  }

  private send(): Promise<number> {
    const sent = this.redis.call("WAIT", "1", String(ACK_TIMEOUT_MS)).then(Number);
    this.inFlight = sent;
    const done = () => {
      if (this.inFlight === sent) this.inFlight = null;
    };
    sent.then(done, done);
    return sent;
  }
}
