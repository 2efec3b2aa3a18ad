// Removes everything a namespace left on the shared engine and Redis: containers first, then keys.
import { execa } from "execa";
import { Cluster, type Redis } from "ioredis";
import { parseRedisUrl } from "../../src/config/redis-url.js";
import { createKeys } from "../../src/store/keys.js";
import { createClient, describeRedis, type RedisConnection } from "../../src/store/redis.js";

/** The Redis the tests use: BERTH_REDIS_URL (any form: one server, Sentinel, Cluster), else the local one. */
export const testRedisUrl = (url?: string) => url ?? process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379";

/** A connected client for `url` (fails fast while Redis is down); the caller disconnects it. */
export async function connectTestRedis(url?: string): Promise<RedisConnection> {
  const redis = createClient(parseRedisUrl(testRedisUrl(url)), { failFast: true, lazy: true });
  redis.on("error", () => undefined);
  // ioredis asks unreachable sentinels again and again without failing: bound the wait.
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis (${describeRedis(testRedisUrl(url))}) did not answer within 15 s`)), 15_000);
  });
  try {
    await Promise.race([redis.connect(), deadline]);
  } catch (err) {
    redis.disconnect();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return redis;
}

export async function sweepNamespace(namespace: string, redisUrl?: string): Promise<void> {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=berth.namespace=${namespace}`], { reject: false });
  const ids = stdout.split("\n").filter(Boolean);
  if (ids.length > 0) await execa("docker", ["rm", "-f", ...ids], { reject: false });
  const volumes = await execa("docker", ["volume", "ls", "-q", "--filter", `label=berth.namespace=${namespace}`], { reject: false });
  const names = volumes.stdout.split("\n").filter(Boolean);
  if (names.length > 0) await execa("docker", ["volume", "rm", "-f", ...names], { reject: false });
  const redis = await connectTestRedis(redisUrl);
  try {
    await unlinkNamespaceKeys(redis, namespace);
  } finally {
    redis.disconnect();
  }
}

/**
 * Every Redis key of a namespace (SCAN, never KEYS), each of its patterns (keys.ts); on a Redis Cluster, on every
 * master. Each comes with the node that holds it.
 */
export async function namespaceKeys(redis: RedisConnection, namespace: string): Promise<{ node: Redis; key: string }[]> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes("master") : [redis];
  const found: { node: Redis; key: string }[] = [];
  for (const node of nodes) {
    for (const pattern of createKeys(namespace).patterns) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 500);
        cursor = next;
        for (const key of keys) found.push({ node, key });
      } while (cursor !== "0");
    }
  }
  return found;
}

/**
 * Deletes every Redis key of a namespace (SCAN + UNLINK, never KEYS + DEL), one per command on the node that holds
 * it (a multi-key UNLINK across a cluster's slots is refused).
 */
export async function unlinkNamespaceKeys(redis: RedisConnection, namespace: string): Promise<void> {
  const found = await namespaceKeys(redis, namespace);
  for (const node of new Set(found.map((f) => f.node))) {
    const keys = found.filter((f) => f.node === node).map((f) => f.key);
    for (let i = 0; i < keys.length; i += 500) await node.pipeline(keys.slice(i, i + 500).map((k) => ["unlink", k])).exec();
  }
}

/** Ids of containers of a namespace on the engine (running or not). */
export async function namespaceContainers(namespace: string): Promise<string[]> {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=berth.namespace=${namespace}`]);
  return stdout.split("\n").filter(Boolean);
}

/** Ids of containers of a namespace that are running right now. */
export async function runningContainers(namespace: string): Promise<string[]> {
  const filters = ["--filter", `label=berth.namespace=${namespace}`, "--filter", "status=running"];
  const { stdout } = await execa("docker", ["ps", "-q", ...filters]);
  return stdout.split("\n").filter(Boolean);
}
