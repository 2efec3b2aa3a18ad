// What each tenant holds and has used, kept up to date as tasks end and their files go, so that reading it (every
// submit, with a storage quota) is one round trip and never a walk of the disk:
// - stored bytes: a per-tenant hash of the workspace and archive bytes of its tasks that still have them. A task is
//   credited once when it ends and debited once when its files go (cleanup, DELETE); the amounts it was credited are
//   kept on its record, so a second credit or debit of the same task changes nothing, whoever retries it;
// - CPU time: one zset entry per ended task, scored by when it ended, so any window sums exactly; entries older than
//   the retention go as new ones come;
// - shared caches: per tenant, each cache's bytes and when it was last used, per host (caches live on a host's disk).
import { randomBytes } from "node:crypto";
import type { Keys } from "./keys.js";
import type { RedisConnection } from "./redis.js";

// KEYS: task record, tenant's stored hash, tenant's CPU zset. ARGV: workspace bytes, archive bytes, ended at (ms),
// CPU ms ('' = unknown), task id, oldest entry to keep (ms). Credits only an existing task not credited before.
const CREDIT = `
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'storedWorkspaceBytes') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'storedWorkspaceBytes', ARGV[1], 'storedArchiveBytes', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'workspaceBytes', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'archiveBytes', ARGV[2])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5] .. ':' .. ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[6])
end
return 1
`;

// KEYS: task record, tenant's stored hash. Takes back what the task was credited, once. (0 - n, not -n: Lua writes
// -0 for a zero, which HINCRBY refuses.)
const DEBIT = `
local w = redis.call('HGET', KEYS[1], 'storedWorkspaceBytes')
if not w then return 0 end
local a = redis.call('HGET', KEYS[1], 'storedArchiveBytes') or '0'
redis.call('HDEL', KEYS[1], 'storedWorkspaceBytes', 'storedArchiveBytes')
redis.call('HINCRBY', KEYS[2], 'workspaceBytes', 0 - tonumber(w))
redis.call('HINCRBY', KEYS[2], 'archiveBytes', 0 - tonumber(a))
return 1
`;

// KEYS: tenant's CPU zset. ARGV: from (ms). The CPU ms of the tasks that ended since then.
const CPU_SINCE = `
local items = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')
local total = 0
for i = 1, #items do
  local ms = string.match(items[i], ':(%d+)$')
  if ms then total = total + tonumber(ms) end
end
return total
`;

// Deletes a lock only if it still holds our token.
const UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

type Script = (numKeys: number, ...args: string[]) => Promise<unknown>;
const SCRIPTS = { berthCredit: CREDIT, berthDebit: DEBIT, berthCpuSince: CPU_SINCE, berthCacheUnlock: UNLOCK } as const;
type ScriptName = keyof typeof SCRIPTS;

/** Bytes a tenant holds, by where. */
export interface StoredBytes {
  readonly workspaces: number;
  readonly archives: number;
  readonly caches: number;
}

/** One shared cache as recorded: where it lives, its size when last measured, and when a task last used it. */
export interface CacheEntry {
  readonly tenant: string;
  readonly host: string;
  readonly name: string;
  readonly bytes: number;
  readonly lastUsedAtMs: number;
}

export class UsageStore {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { lua });
    }
  }

  private run(name: ScriptName, numKeys: number, ...args: string[]): Promise<unknown> {
    return (this.redis as unknown as Record<ScriptName, Script>)[name].call(this.redis, numKeys, ...args);
  }

  /**
   * Counts an ended task's workspace and archive bytes to its tenant and its CPU time to the window, once (false
   * when it was counted before or no longer exists). CPU entries older than `keepSinceMs` are dropped meanwhile.
   */
  async credit(
    task: { readonly id: string; readonly tenant: string },
    bytes: { readonly workspace: number; readonly archive: number },
    ended: { readonly atMs: number; readonly cpuSeconds: number | null },
    keepSinceMs: number,
  ): Promise<boolean> {
    const res = await this.run(
      "berthCredit",
      3,
      this.keys.task(task.id),
      this.keys.tenantStored(task.tenant),
      this.keys.tenantCpu(task.tenant),
      String(Math.max(0, Math.round(bytes.workspace))),
      String(Math.max(0, Math.round(bytes.archive))),
      String(ended.atMs),
      ended.cpuSeconds === null ? "" : String(Math.round(ended.cpuSeconds * 1000)),
      task.id,
      String(keepSinceMs),
    );
    return res === 1;
  }

  /** Takes back what each task was credited (its files are gone); tasks not credited, or debited before, are skipped. */
  async debit(tasks: readonly { readonly id: string; readonly tenant: string }[]): Promise<void> {
    if (tasks.length === 0) return;
    const pipe = this.redis.pipeline();
    const debit = (pipe as unknown as Record<ScriptName, (numKeys: number, ...args: string[]) => unknown>).berthDebit;
    for (const t of tasks) debit.call(pipe, 2, this.keys.task(t.id), this.keys.tenantStored(t.tenant));
    const rows = (await pipe.exec()) ?? [];
    const failed = rows.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  /** What the tenant holds now: its tasks' workspaces and archives, and its caches on every host. */
  async stored(tenant: string): Promise<StoredBytes> {
    const rows =
      (await this.redis
        .pipeline()
        .hmget(this.keys.tenantStored(tenant), "workspaceBytes", "archiveBytes")
        .hvals(this.keys.tenantCaches(tenant))
        .exec()) ?? [];
    const [[e1, counts], [e2, caches]] = rows as [[Error | null, (string | null)[]], [Error | null, string[]]];
    if (e1 || e2) throw e1 ?? e2;
    const n = (v: string | null | undefined) => Math.max(0, Number(v ?? 0) || 0);
    return {
      workspaces: n(counts[0]),
      archives: n(counts[1]),
      caches: caches.reduce((sum, raw) => sum + (parseCache(raw)?.bytes ?? 0), 0),
    };
  }

  /** CPU seconds of the tenant's tasks that ended at or after `sinceMs`. */
  async cpuSecondsSince(tenant: string, sinceMs: number): Promise<number> {
    const ms = Number(await this.run("berthCpuSince", 1, this.keys.tenantCpu(tenant), String(Math.max(0, Math.floor(sinceMs)))));
    return Math.round(ms) / 1000;
  }

  /** Records a cache's size and last use (a task starting or ending with it). */
  async recordCache(entry: CacheEntry): Promise<void> {
    await this.redis.hset(
      this.keys.tenantCaches(entry.tenant),
      `${entry.host}/${entry.name}`,
      JSON.stringify({ bytes: entry.bytes, lastUsedAtMs: entry.lastUsedAtMs }),
    );
  }

  /** What is recorded of one cache, or null. */
  async cache(tenant: string, host: string, name: string): Promise<CacheEntry | null> {
    const raw = await this.redis.hget(this.keys.tenantCaches(tenant), `${host}/${name}`);
    const parsed = raw ? parseCache(raw) : null;
    return parsed ? { tenant, host, name, ...parsed } : null;
  }

  /** Names of the tenant's caches on any host (to bound how many one tenant may have). */
  async cacheNames(tenant: string): Promise<string[]> {
    const fields = await this.redis.hkeys(this.keys.tenantCaches(tenant));
    return [...new Set(fields.map((f) => f.slice(f.lastIndexOf("/") + 1)))];
  }

  /** Takes a cache's lock (SET NX PX) if free: the token to release it with, or null while another holds it. */
  async lockCache(host: string, volume: string, ttlMs: number): Promise<string | null> {
    const token = randomBytes(12).toString("hex");
    const res = await this.redis.set(this.keys.cacheLock(host, volume), token, "PX", ttlMs, "NX");
    return res === "OK" ? token : null;
  }

  async unlockCache(host: string, volume: string, token: string): Promise<void> {
    await this.run("berthCacheUnlock", 1, this.keys.cacheLock(host, volume), token);
  }

  /** Every cache recorded for the tenant (on any host). */
  async caches(tenant: string): Promise<CacheEntry[]> {
    const all = await this.redis.hgetall(this.keys.tenantCaches(tenant));
    return Object.entries(all).flatMap(([field, raw]) => {
      const v = parseCache(raw);
      const at = field.lastIndexOf("/");
      return v && at > 0 ? [{ tenant, host: field.slice(0, at), name: field.slice(at + 1), ...v }] : [];
    });
  }

  /** Forgets a cache (its volume and files are gone). */
  async forgetCache(tenant: string, host: string, name: string): Promise<void> {
    await this.redis.hdel(this.keys.tenantCaches(tenant), `${host}/${name}`);
  }
}

function parseCache(raw: string): { bytes: number; lastUsedAtMs: number } | null {
  try {
    const v = JSON.parse(raw) as { bytes?: unknown; lastUsedAtMs?: unknown };
    return typeof v.bytes === "number" && typeof v.lastUsedAtMs === "number" ? { bytes: v.bytes, lastUsedAtMs: v.lastUsedAtMs } : null;
  } catch {
    return null;
  }
}
