// Every Redis connection berth opens is made here: the API's fail-fast connection, and the long-lived ones that
// BullMQ, pub/sub subscribers and workers hold. One place knows how to reach Redis and how to log its outages.
import { Redis, type RedisOptions } from "ioredis";
import type { Logger } from "pino";
import { BerthError } from "../errors.js";

/** While Redis stays unreachable, a connection logs its error at most this often (not on every retry). */
const ERROR_LOG_INTERVAL_MS = 30_000;

export type RedisConnection = Redis;

/** Logs a connection's errors with backoff: the first at once, then one line per interval saying how many followed. */
function logErrors(redis: Redis, logger: Logger, purpose: string): void {
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

/** "host:port" of the Redis a URL names, for messages (never the password). */
export function describeRedis(url: string): string {
  try {
    const where = new URL(url);
    return `${where.hostname}:${where.port || 6379}`;
  } catch {
    return "the address in BERTH_REDIS_URL";
  }
}

/**
 * A fail-fast connection (the general-purpose one, or the API's own for reading logs): commands fail fast while Redis is down (the API answers 503 instead of
 * hanging). Resolves once connected, or throws a message naming BERTH_REDIS_URL.
 */
export async function connectRedis(url: string, logger: Logger, purpose = "commands"): Promise<RedisConnection> {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 5000 });
  logErrors(redis, logger, purpose);
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new BerthError(
      "dependency_unavailable",
      `Redis at ${describeRedis(url)} (BERTH_REDIS_URL) does not answer; start it, or point BERTH_REDIS_URL at a running Redis.`,
      {},
      { cause: err },
    );
  }
  return redis;
}

/**
 * A long-lived connection that waits out outages (BullMQ's blocking reads, pub/sub subscribers): commands queue
 * while it reconnects. `lazy`: not connected until {@link RedisConnection.connect} (subscribers connect before
 * they subscribe).
 */
export function openConnection(url: string, logger: Logger, purpose: string, opts: { lazy?: boolean } = {}): RedisConnection {
  const options: RedisOptions = { maxRetriesPerRequest: null, lazyConnect: opts.lazy ?? false };
  const redis = new Redis(url, options);
  logErrors(redis, logger, purpose);
  return redis;
}

/**
 * A new long-lived connection subscribed to `channel`; each message's text goes to `onMessage`. `opened` gets the
 * connection before it connects, so a caller shutting down meanwhile can close it. Connected before it subscribes:
 * a SUBSCRIBE queued before the ready check makes ioredis's INFO fail.
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
  if (redis.status !== "ready") {
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
