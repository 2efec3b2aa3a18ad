// Removes everything a namespace left on the shared engine and Redis: containers first, then keys.
import { execa } from "execa";
import { Redis } from "ioredis";

export async function sweepNamespace(namespace: string, redisUrl?: string): Promise<void> {
  const { stdout } = await execa("docker", ["ps", "-aq", "--filter", `label=berth.namespace=${namespace}`], { reject: false });
  const ids = stdout.split("\n").filter(Boolean);
  if (ids.length > 0) await execa("docker", ["rm", "-f", ...ids], { reject: false });
  const volumes = await execa("docker", ["volume", "ls", "-q", "--filter", `label=berth.namespace=${namespace}`], { reject: false });
  const names = volumes.stdout.split("\n").filter(Boolean);
  if (names.length > 0) await execa("docker", ["volume", "rm", "-f", ...names], { reject: false });
  const redis = new Redis(redisUrl ?? process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: 1 });
  try {
    await unlinkNamespaceKeys(redis, namespace);
  } finally {
    redis.disconnect();
  }
}

/** Deletes every Redis key of a namespace (SCAN + UNLINK, never KEYS + DEL). */
export async function unlinkNamespaceKeys(redis: Redis, namespace: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${namespace}:*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
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
