// A task's shared caches on this worker host: before the task, each is made ready (its directory, owned by the
// runner user, behind a Docker volume of the tenant's) and marked used; after it, measured, so that it counts in
// the tenant's stored bytes. Preparing a cache and removing it (cleanup, `berth cache remove`) take the same lock,
// so a task never starts with a cache that is being removed.
//
// Two tasks of one tenant may use the same cache at once: both see the same directory, and what one writes the
// other sees; whoever writes a file last wins, as with any shared cache.
import type { Logger } from "pino";
import type { Deps } from "../app/deps.js";
import { cacheMountPath, cacheVolumeName } from "../domain/caches.js";
import { TaskFailure } from "../errors.js";
import type { UsageStore } from "../store/usage-store.js";
import { cacheDirPath, prepareCacheDir } from "../workspace/cache-dir.js";
import { ensureNoSuidRoot, releaseNoSuidRoot, type RootMount } from "../workspace/mount.js";
import { measureWorkspace } from "../workspace/usage.js";
import { parseRunnerUser } from "../workspace/workspace.js";
import { LABEL_HOST, LABEL_MANAGED, LABEL_NAMESPACE, LABEL_TENANT } from "./labels.js";

/** The cache's name, on its volume. */
export const LABEL_CACHE = "berth.cache";
/** How long one holder may keep a cache's lock (preparing takes milliseconds; removing a big cache longer). */
export const CACHE_LOCK_TTL_MS = 10 * 60_000;
/** How long a task waits for a cache's lock (held while the cache is removed) before it fails. */
const LOCK_WAIT_MS = 30_000;

/** One cache made ready for a task. */
export interface PreparedCache {
  readonly name: string;
  readonly volume: string;
  readonly directory: string;
  /** Where the task sees it. */
  readonly target: string;
}

/** The labels of a cache's volume: berth's, this namespace's and host's, and whose cache it is. */
export const cacheLabels = (deps: Deps, tenant: string, name: string): Record<string, string> => ({
  [LABEL_MANAGED]: "true",
  [LABEL_NAMESPACE]: deps.namespace,
  [LABEL_HOST]: deps.host,
  [LABEL_TENANT]: tenant,
  [LABEL_CACHE]: name,
});

/** Runs `fn` holding the cache's lock, waiting (bounded) while another holds it; null when it stayed taken. */
export async function withCacheLock<T>(
  usage: UsageStore,
  host: string,
  volume: string,
  waitMs: number,
  fn: () => Promise<T>,
): Promise<T | null> {
  const deadline = Date.now() + waitMs;
  let token = await usage.lockCache(host, volume, CACHE_LOCK_TTL_MS);
  while (token === null) {
    if (Date.now() >= deadline) return null;
    await new Promise((resolve) => setTimeout(resolve, 200));
    token = await usage.lockCache(host, volume, CACHE_LOCK_TTL_MS);
  }
  try {
    return await fn();
  } finally {
    await usage.unlockCache(host, volume, token).catch(() => undefined);
  }
}

/** The caches of one worker process: made ready for tasks, measured after them. */
export class TaskCaches {
  private rootMount: RootMount | null = null;

  constructor(
    private readonly deps: Deps,
    private readonly usage: UsageStore,
  ) {}

  /** Makes each named cache of the tenant ready and marks it used now. Fails the task (workspace_failed) if one cannot be. */
  async prepare(tenant: string, names: readonly string[], log: Logger): Promise<PreparedCache[]> {
    const { config, host, namespace, runtime } = this.deps;
    const root = config.dirs.caches;
    const out: PreparedCache[] = [];
    for (const name of names) {
      const volume = cacheVolumeName(namespace, tenant, name);
      try {
        const done = await withCacheLock(this.usage, host, volume, LOCK_WAIT_MS, async () => {
          const directory = await prepareCacheDir(root, volume, parseRunnerUser(config.worker.runnerUser));
          await this.keepRootMounted(root, log);
          await runtime.ensureVolume({ name: volume, directory, labels: cacheLabels(this.deps, tenant, name) });
          const known = await this.usage.cache(tenant, host, name);
          await this.usage.recordCache({ tenant, host, name, bytes: known?.bytes ?? 0, lastUsedAtMs: Date.now() });
          return directory;
        });
        if (done === null) throw new Error("it is being removed; retry the task in a while");
        out.push({ name, volume, directory: done, target: cacheMountPath(name) });
      } catch (err) {
        throw new TaskFailure("workspace_failed", `Could not prepare cache "${name}": ${(err as Error).message}`, { cause: err });
      }
    }
    if (out.length > 0) log.info({ caches: out.map((c) => c.name) }, "caches ready");
    return out;
  }

  /** After the task: each cache's size now, and its last use. Never throws (a failure is logged). */
  async measure(tenant: string, caches: readonly PreparedCache[], log: Logger): Promise<void> {
    for (const c of caches) {
      try {
        const { bytes } = await measureWorkspace(cacheDirPath(this.deps.config.dirs.caches, c.volume));
        await this.usage.recordCache({ tenant, host: this.deps.host, name: c.name, bytes, lastUsedAtMs: Date.now() });
      } catch (err) {
        log.warn({ err, cache: c.name }, "cache not measured");
      }
    }
  }

  /**
   * The cache root as a nosuid,nodev mount of itself, like the workspace root (workspace/mount.ts): every cache the
   * engine mounts into a task is then nosuid,nodev too. Checked before each use; made once per process.
   */
  private async keepRootMounted(root: string, log: Logger): Promise<void> {
    if (this.rootMount === "not_root" || this.rootMount === "failed") return;
    const now = await ensureNoSuidRoot(root).catch((): RootMount => "failed");
    if (now === "not_root" || now === "failed") log.warn({ root, outcome: now }, "caches are mounted without nosuid,nodev");
    if (this.rootMount !== "mounted") this.rootMount = now;
  }

  /** Undoes the cache root's mount if this process made it. */
  async close(): Promise<void> {
    if (this.rootMount === "mounted") await releaseNoSuidRoot(this.deps.config.dirs.caches).catch(() => undefined);
  }
}
