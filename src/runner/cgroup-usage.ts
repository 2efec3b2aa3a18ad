// What a task's processes used, from the kernel's cgroup accounting: CPU time and peak memory.
//
// A container's own cgroup is gone the moment it exits (the engine deletes it before it reports the exit), so
// each task's container is created under a parent cgroup of its own, `/berth/<container name>`, which the
// runtime (runc) makes and leaves behind. The kernel charges a child's CPU time and memory to its parents as
// well, and a parent keeps them after the child is gone: read once the container has exited, the parent holds
// exactly what the task used. Berth then removes the parent's (empty) directories.
//
// Only where berth sees the engine's cgroups: the engine on this host with the `cgroupfs` cgroup driver, and
// berth running as root (it removes the directories). Elsewhere (the systemd driver, a remote engine, berth in a
// container of its own) tasks run without a parent of their own and record no usage.
import { readdir, readFile, rmdir, stat } from "node:fs/promises";
import path from "node:path";
import type { ResourceUsage } from "./container-runtime.js";

/** Where the kernel's cgroup filesystems are mounted. */
export const CGROUP_ROOT = "/sys/fs/cgroup";
/** The engine-relative cgroup under which every task's parent is made. */
const TOP = "berth";

/** The engine's cgroup set-up, as `docker info` reports it. */
export interface EngineCgroups {
  readonly driver: string;
  readonly version: 1 | 2;
}

/** The parent cgroup (engine-relative path) of the container named `name`. */
export const taskCgroupParent = (name: string): string => `/${TOP}/${name}`;

/** Whether a container's cgroup parent is one berth made for a task (and so removes with it). */
export const isTaskCgroupParent = (parent: string): boolean => /^\/berth\/[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$/.test(parent);

/** cgroup v1: `cpuacct.usage` (ns) and `memory.max_usage_in_bytes`; null when unreadable or not numbers. */
export function parseV1(cpuacctUsage: string | null, maxUsage: string | null): ResourceUsage | null {
  const ns = wholeNumber(cpuacctUsage);
  if (ns === null) return null;
  return { cpuSeconds: roundMs(ns / 1e9), peakMemoryBytes: wholeNumber(maxUsage) };
}

/** cgroup v2: `usage_usec` of `cpu.stat` and `memory.peak` (kernel 5.19+; null before); null when unreadable. */
export function parseV2(cpuStat: string | null, memoryPeak: string | null): ResourceUsage | null {
  const usec = wholeNumber(/^usage_usec (\d+)$/m.exec(cpuStat ?? "")?.[1] ?? null);
  if (usec === null) return null;
  return { cpuSeconds: roundMs(usec / 1e6), peakMemoryBytes: wholeNumber(memoryPeak) };
}

const wholeNumber = (raw: string | null): number | null => {
  const t = raw?.trim() ?? "";
  return /^\d{1,20}$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : null;
};
const roundMs = (seconds: number) => Math.round(seconds * 1000) / 1000;

/**
 * The cgroup accounting of one engine: whether tasks get a parent cgroup of their own, and reading and removing
 * it. `root` is where the cgroup filesystems are mounted (tests point it elsewhere).
 */
export class CgroupAccounting {
  private enabled: boolean;

  constructor(
    private readonly cgroups: EngineCgroups | null,
    private readonly root = CGROUP_ROOT,
    isRoot = process.getuid?.() === 0,
  ) {
    this.enabled = isRoot && cgroups !== null && cgroups.driver === "cgroupfs";
  }

  /** The parent to create the container `name` under, or null when usage cannot be read here. */
  parentFor(name: string): string | null {
    return this.enabled ? taskCgroupParent(name) : null;
  }

  /** Host directories of a parent: one per v1 hierarchy (the runtime makes it in each), or the one of v2. */
  private async dirsOf(parent: string): Promise<string[]> {
    const rel = parent.replace(/^\/+/, "");
    if (this.cgroups?.version === 2) return [path.join(this.root, rel)];
    const hierarchies = await readdir(this.root).catch(() => [] as string[]);
    return hierarchies.map((h) => path.join(this.root, h, rel));
  }

  /**
   * What the processes of the container created under `parent` used, read after it exited. Null when the parent
   * is not there: then this process does not see the engine's cgroups (a remote engine), and no later task gets
   * a parent either.
   */
  async read(parent: string): Promise<ResourceUsage | null> {
    const rel = parent.replace(/^\/+/, "");
    const read = (...parts: string[]) => readFile(path.join(this.root, ...parts), "utf8").catch(() => null);
    const found =
      this.cgroups?.version === 2
        ? parseV2(await read(rel, "cpu.stat"), await read(rel, "memory.peak"))
        : parseV1(await read("cpuacct", rel, "cpuacct.usage"), await read("memory", rel, "memory.max_usage_in_bytes"));
    if (found === null) {
      const seen = await stat(path.join(this.root, this.cgroups?.version === 2 ? "" : "cpuacct", rel)).then(
        () => true,
        () => false,
      );
      if (!seen) this.enabled = false;
    }
    return found;
  }

  /** Removes the parent's directories (empty once its container is gone); what is not there is fine. */
  async release(parent: string): Promise<void> {
    const busy: unknown[] = [];
    for (const dir of await this.dirsOf(parent)) {
      await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") busy.push(err);
      });
    }
    if (busy.length > 0) throw busy[0];
  }
}
