// Every Redis connection berth opens is made here: the API's fail-fast connection, and the long-lived ones that
// BullMQ, pub/sub subscribers and workers hold. One place knows how to reach Redis (one server, a master found
// through Sentinel, or a Redis Cluster: config/redis-url.ts reads which) and how to log its outages.
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { describeRedisTarget, parseRedisUrl, type RedisTarget } from "../config/redis-url.js";
import { BerthError } from "../errors.js";
import { ReplicaAck } from "./replica-ack.js";

/** While Redis stays unreachable, a connection logs its error at most this often (not on every retry). */
const ERROR_LOG_INTERVAL_MS = 30_000;

/**
 * How long the first connection may take. One unreachable Redis fails at once, but ioredis asks unreachable
 * sentinels (or a sentinel that knows no such master) again and again without ever failing.
 */
const CONNECT_DEADLINE_MS = 10_000;

/** One Redis, or a master behind Sentinel (both ioredis `Redis`), or a Redis Cluster: BullMQ takes either. */
export type RedisConnection = Redis | Cluster;

/** Logs a connection's errors with backoff: the first at once, then one line per interval saying how many followed. */
function logErrors(redis: RedisConnection, logger: Logger, purpose: string): void {
  let lastLogged = 0;
  let suppressed = 0;
  redis.on("error", (err: Error) => {
    const now = Date.now();
    if (now - lastLogged < ERROR_LOG_INTERVAL_MS) {
      suppressed++;
      return;
    }
    logger.warn({ err, purpose, suppressed }, "redis connection error");
    lastLogged = now;
    suppressed = 0;
  });
  redis.on("ready", () => {
    if (lastLogged > 0) logger.info({ purpose }, "redis connection restored");
    lastLogged = 0;
    suppressed = 0;
  });
}

/** Where the Redis a URL names is, for messages (never the password). */
export function describeRedis(url: string): string {
  try {
    return describeRedisTarget(parseRedisUrl(url));
  } catch {
    return "the Redis in BERTH_REDIS_URL";
  }
}

/**
 * Errors that mean "Redis is not reachable right now" (the API answers 503 and the caller may retry): a lost
 * connection, a full offline queue, a Sentinel failover or a Cluster re-sharding in progress, a master that refuses
 * writes while it has too few replicas (`min-replicas-to-write`).
 */
export function isRedisUnavailable(err: Error): boolean {
  return /Connection is closed|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|ECONNRESET|EPIPE|max retries per request|ETIMEDOUT|All sentinels are unreachable|Cluster isn't ready|None of startup nodes|Failed to refresh slots cache|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|READONLY|LOADING|NOREPLICAS/i.test(
    err.message,
  );
}

/**
 * A master demoted to a replica by a failover answers writes with READONLY. Reconnecting asks the sentinels for
 * the new master; 2 = reconnect and send the command again.
 */
const reconnectOnReadonly = (err: Error): 2 | false => (err.message.startsWith("READONLY") ? 2 : false);

/**
 * A connection to a Sentinel-managed master. ioredis 5 leaves the failover detector's connections to the sentinels
 * open after quit() (the process would not exit); disconnect() closes them, so a connection that ended otherwise
 * calls it. Its duplicates (BullMQ's blocking connections) are made the same way.
 */
class SentinelRedis extends Redis {
  private disconnected = false;

  constructor(options: RedisOptions) {
    super(options);
    this.once("end", () => {
      if (!this.disconnected) this.disconnect();
    });
  }

  override disconnect(reconnect = false): void {
    if (!reconnect) this.disconnected = true;
    super.disconnect(reconnect);
  }

  override duplicate(override?: Partial<RedisOptions>): Redis {
    return new SentinelRedis({ ...this.options, ...override });
  }
}

interface Behaviour {
  /** Commands fail at once while Redis is unreachable (the API answers 503), instead of waiting in a queue. */
  readonly failFast: boolean;
  /** Not connected until `connect()`. */
  readonly lazy: boolean;
}

/** The ioredis client for a target: `Redis` for one server or a Sentinel-managed master, `Cluster` for a cluster. */
export function createClient(target: RedisTarget, behaviour: Behaviour): RedisConnection {
  // BullMQ's blocking reads need maxRetriesPerRequest null: they wait out an outage or a failover.
  // Fail-fast: a command caught by a disconnect fails at once (maxRetriesPerRequest 0) rather than being sent again
  // after the reconnect, above all a WAIT (replica-ack.ts), which on a new connection would confirm nothing.
  const perRequest: RedisOptions = behaviour.failFast ? { maxRetriesPerRequest: 0, connectTimeout: 5000 } : { maxRetriesPerRequest: null };
  switch (target.kind) {
    case "single":
      return new Redis(target.url, { ...perRequest, enableOfflineQueue: !behaviour.failFast, lazyConnect: behaviour.lazy });
    case "sentinel":
      return new SentinelRedis({
        ...perRequest,
        enableOfflineQueue: !behaviour.failFast,
        lazyConnect: behaviour.lazy,
        sentinels: target.sentinels.map((n) => ({ host: n.host, port: n.port })),
        name: target.masterName,
        ...credentials(target),
        ...(target.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
        // Told of a promotion by the sentinels (+switch-master), a connection moves at once. Without it, after a
        // failover that leaves the old master up (SENTINEL FAILOVER, a partition), a connection goes on writing to
        // it for seconds, until the sentinels demote it, and those writes are lost.
        failoverDetector: true,
        reconnectOnError: reconnectOnReadonly,
      });
    case "cluster": {
      const options: ClusterOptions = {
        enableOfflineQueue: !behaviour.failFast,
        lazyConnect: behaviour.lazy,
        redisOptions: { ...perRequest, ...credentials(target), ...(target.tls ? { tls: {} } : {}) },
      };
      return new Cluster(
        target.nodes.map((n) => ({ host: n.host, port: n.port })),
        options,
      );
    }
  }
}

const credentials = (t: { username?: string; password?: string }) => ({
  ...(t.username ? { username: t.username } : {}),
  ...(t.password ? { password: t.password } : {}),
});

/**
 * A fail-fast connection (the general-purpose one, or the API's own for reading logs): commands fail fast while
 * Redis is down (the API answers 503 instead of hanging). Resolves once connected, or throws a message naming
 * BERTH_REDIS_URL.
 */
export async function connectRedis(url: string, logger: Logger, purpose = "commands"): Promise<RedisConnection> {
  const target = parseRedisUrl(url);
  const redis = createClient(target, { failFast: true, lazy: true });
  logErrors(redis, logger, purpose);
  // The reason the last attempt failed (a wrong password, an unknown master), for the message; never a secret.
  let lastError: Error | undefined;
  const remember = (err: Error) => {
    lastError = err;
  };
  redis.on("error", remember);
  try {
    await withDeadline(redis.connect(), CONNECT_DEADLINE_MS);
  } catch (err) {
    redis.disconnect();
    const reason = (lastError ?? (err as Error)).message;
    throw new BerthError(
      "dependency_unavailable",
      `${describeRedisTarget(target)} (BERTH_REDIS_URL) does not answer (${reason}); start it, or point BERTH_REDIS_URL at a running Redis.`,
      {},
      { cause: err },
    );
  } finally {
    redis.off("error", remember);
  }
  // Behind Sentinel a failover must not lose what berth has confirmed: its writes wait for a replica (replica-ack.ts).
  if (target.kind === "sentinel") ReplicaAck.attach(redis as Redis, logger);
  return redis;
}

/**
 * A long-lived connection that waits out outages (BullMQ's blocking reads, pub/sub subscribers): commands queue
 * while it reconnects. `lazy`: not connected until {@link RedisConnection.connect} (subscribers connect before
 * they subscribe).
 */
export function openConnection(url: string, logger: Logger, purpose: string, opts: { lazy?: boolean } = {}): RedisConnection {
  const redis = createClient(parseRedisUrl(url), { failFast: false, lazy: opts.lazy ?? false });
  logErrors(redis, logger, purpose);
  return redis;
}

/**
 * A new long-lived connection subscribed to `channel`; each message's text goes to `onMessage`. `opened` gets the
 * connection before it connects, so a caller shutting down meanwhile can close it. Connected before it subscribes:
 * a SUBSCRIBE queued before the ready check makes ioredis's INFO fail. On a Redis Cluster, ioredis subscribes
 * through one node and PUBLISH reaches every node, so the subscriber hears messages published anywhere.
 */
export async function openSubscriber(
  url: string,
  logger: Logger,
  purpose: string,
  channel: string,
  onMessage: (message: string) => void,
  opened?: (connection: RedisConnection) => void,
): Promise<RedisConnection> {
  const sub = openConnection(url, logger, purpose, { lazy: true });
  sub.on("message", (_channel: string, message: string) => onMessage(message));
  opened?.(sub);
  await sub.connect();
  await sub.subscribe(channel);
  return sub;
}

/**
 * Closes a connection politely, or at once when Redis is not connected or does not answer within `ms`. Never
 * throws, never waits longer than `ms`: a QUIT queued while ioredis waits to reconnect would never settle.
 */
export async function closeConnection(redis: RedisConnection, ms = 2000): Promise<void> {
  if (redis.status === "end") return;
  // ioredis gives a Sentinel connection ended by QUIT 2 s more to close (a timer that holds the process): drop it.
  if (redis.status !== "ready" || redis instanceof SentinelRedis) {
    redis.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.quit(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("QUIT not answered")), ms);
        timer.unref();
      }),
    ]);
  } catch {
    redis.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits until a replica holds every write made so far on `redis` (behind Sentinel; elsewhere it returns at once).
 * Call it before acting on a change a failover must not lose: see replica-ack.ts.
 */
export function confirmWrites(redis: RedisConnection): Promise<void> {
  return ReplicaAck.of(redis)?.confirm() ?? Promise.resolve();
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
