// Tenants' shared caches on this host: listing them (`berth cache list`), removing one (`berth cache remove`) and,
// on the cleanup schedule, removing those unused for BERTH_CACHE_IDLE_DAYS. A cache is removed under the same lock
// a task takes to prepare it (runner/caches.ts), and only while no container mounts its volume (the engine refuses
// to remove a volume in use): its volume first, then its directory, then its record.
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { lstat } from "node:fs/promises";
import { LABEL_CACHE, withCacheLock } from "../runner/caches.js";
import { LABEL_HOST, LABEL_MANAGED, LABEL_NAMESPACE, LABEL_TENANT } from "../runner/labels.js";
import { cacheDirPath, removeCacheDir } from "../workspace/cache-dir.js";
import { diskUsage } from "./disk-usage.js";

const DAY_MS = 86_400_000;

/** One cache of this host, as its volume, its directory and its record tell. */
export interface CacheInfo {
  readonly volume: string;
  readonly tenant: string;
  readonly name: string;
  readonly directory: string;
  /** Bytes on disk now (0 when the directory is missing). */
  readonly bytes: number;
  /** When a task last used it (null when berth has no record of it). */
  readonly lastUsedAt: string | null;
}

/** What became of a cache berth was asked to remove, or why it is left. */
export type CacheRemoval = "removed" | "in_use" | "locked" | "used_since" | "missing";

/** This host's caches (volumes of this namespace and host), with their size now and their last use. */
export async function listCaches(deps: Deps, services: Services): Promise<CacheInfo[]> {
  const volumes = await deps.runtime.findVolumes({ [LABEL_MANAGED]: "true", [LABEL_NAMESPACE]: deps.namespace, [LABEL_HOST]: deps.host });
  const out: CacheInfo[] = [];
  const dirs = volumes.map((v) => safeDir(deps, v.name));
  const sizes = await diskUsage(dirs.flatMap((d) => (d ? [d] : [])));
  for (const [i, v] of volumes.entries()) {
    const tenant = v.labels[LABEL_TENANT] ?? "";
    const name = v.labels[LABEL_CACHE] ?? "";
    const dir = dirs[i] ?? null;
    if (!dir) continue;
    const entry = await services.usage.cache(tenant, deps.host, name).catch(() => null);
    out.push({
      volume: v.name,
      tenant,
      name,
      directory: dir,
      bytes: sizes.get(dir) ?? 0,
      lastUsedAt: entry ? new Date(entry.lastUsedAtMs).toISOString() : null,
    });
  }
  return out.sort((a, b) => a.volume.localeCompare(b.volume));
}

/**
 * Removes a cache of this host: refused while a container mounts it (`in_use`) or another holds its lock
 * (`locked`); with `unusedSinceMs`, also when a task has used it since (`used_since`).
 */
export async function removeCache(
  deps: Deps,
  services: Services,
  cache: { readonly volume: string; readonly tenant: string; readonly name: string },
  opts: { readonly unusedSinceMs?: number; readonly dryRun?: boolean } = {},
): Promise<CacheRemoval> {
  const done = await withCacheLock(services.usage, deps.host, cache.volume, 0, async (): Promise<CacheRemoval> => {
    const entry = await services.usage.cache(cache.tenant, deps.host, cache.name);
    if (opts.unusedSinceMs !== undefined && entry && entry.lastUsedAtMs > opts.unusedSinceMs) return "used_since";
    if (opts.dryRun) return "removed";
    const volume = await deps.runtime.removeVolume(cache.volume);
    if (volume === "in_use") return "in_use";
    await removeCacheDir(deps.config.dirs.caches, cache.volume);
    await services.usage.forgetCache(cache.tenant, deps.host, cache.name);
    return volume === "missing" && !entry ? "missing" : "removed";
  });
  return done ?? "locked";
}

/** What one pass over the caches removed (or, in a dry run, would) and left. */
export interface CacheSweepResult {
  readonly removed: { volume: string; tenant: string; name: string; bytes: number; lastUsedAt: string | null }[];
  readonly skipped: { volume: string; reason: Exclude<CacheRemoval, "removed"> }[];
}

/** Removes this host's caches no task has used for BERTH_CACHE_IDLE_DAYS. */
export async function sweepCaches(
  deps: Deps,
  services: Services,
  opts: { now?: number; dryRun?: boolean } = {},
): Promise<CacheSweepResult> {
  const now = opts.now ?? Date.now();
  const idleSince = now - deps.config.cacheIdleDays * DAY_MS;
  const result: CacheSweepResult = { removed: [], skipped: [] };
  const log = deps.logger.child({ component: "cleanup", host: deps.host, dryRun: opts.dryRun ?? false });
  for (const c of await listCaches(deps, services)) {
    // A cache without a record (lost) is judged by when its directory last changed.
    const lastUsed =
      c.lastUsedAt !== null
        ? Date.parse(c.lastUsedAt)
        : await lstat(c.directory).then(
            (st) => st.mtimeMs,
            () => now,
          );
    if (lastUsed > idleSince) continue;
    const outcome = await removeCache(deps, services, c, { unusedSinceMs: idleSince, ...(opts.dryRun ? { dryRun: true } : {}) }).catch(
      (err: unknown) => {
        log.error({ err, volume: c.volume }, "cache could not be removed; the next pass retries");
        return null;
      },
    );
    if (outcome === "removed") {
      result.removed.push({ volume: c.volume, tenant: c.tenant, name: c.name, bytes: c.bytes, lastUsedAt: c.lastUsedAt });
      log.info({ event: "cleanup.cache_removed", volume: c.volume, tenant: c.tenant, bytes: c.bytes }, "removed an idle cache");
    } else if (outcome !== null && outcome !== "missing") result.skipped.push({ volume: c.volume, reason: outcome });
  }
  return result;
}

/** The cache directory of a volume berth named, or null for a name it would never make. */
function safeDir(deps: Deps, volume: string): string | null {
  try {
    return cacheDirPath(deps.config.dirs.caches, volume);
  } catch {
    return null;
  }
}
