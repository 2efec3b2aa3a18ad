// The warm pool's own figures: how often a burst of submissions finds a container (ready, or still starting) and
// what the pool costs while it waits: memory per container (its cgroup, and the engine's shim process for it) and
// CPU while idle (cgroup CPU time of the containers and the shims' CPU time over a quiet interval).
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { LABEL_NAMESPACE, LABEL_POOL } from "../src/runner/labels.js";
import { fmtNum, mean, submitTask, sum, waitArchived, type BenchContext, type FigureResult, type InProcessBerth } from "./lib.js";
import { poolFull } from "./latency.js";

const BURST = 50;

export async function warmPoolBench(ctx: BenchContext, berth: InProcessBerth, poolSize: number): Promise<FigureResult> {
  ctx.log(`warm pool: idle cost of ${poolSize} containers, then a burst of ${BURST} submissions`);
  await poolFull(berth, poolSize);
  const idle = await idleCost(berth, ctx.quick ? 5000 : 15_000);

  const before = berth.warmPool();
  const submitted = await Promise.all(
    Array.from({ length: BURST }, () => submitTask(berth.url, { command: ["true"], labels: { bench: ctx.runId } })),
  );
  await Promise.all(submitted.map((s) => waitArchived(berth.url, s.id, undefined, 600_000)));
  const after = berth.warmPool();
  const hits = (after?.hits ?? 0) - (before?.hits ?? 0);
  const waited = (after?.waited ?? 0) - (before?.waited ?? 0);
  const misses = (after?.misses ?? 0) - (before?.misses ?? 0);
  const pct = (x: number) => `${fmtNum((100 * x) / BURST)}%`;
  return {
    rows: [
      {
        figure: `Warm pool: burst of ${BURST} \`true\` tasks (concurrency 4, pool of ${poolSize}), started warm`,
        unit: "%",
        berth: (100 * (hits + waited)) / BURST,
        baseline: null,
        baselineIs: "—",
        runs: 1,
      },
      {
        figure: "Warm pool: memory per waiting container (cgroup + engine shim)",
        unit: "MB",
        berth: idle.cgroupBytes + idle.shimBytes,
        baseline: null,
        baselineIs: "—",
        runs: idle.containers,
      },
      {
        figure: `Warm pool: CPU while ${idle.containers} containers wait (containers + shims)`,
        unit: "% of a core",
        berth: idle.cpuPercent,
        baseline: null,
        baselineIs: "—",
        runs: 1,
      },
    ],
    details: [
      `Warm pool — a burst of ${BURST} submissions at concurrency 4 with a pool of ${poolSize}: ${hits} (${pct(hits)}) found a ready container, ${waited} (${pct(waited)}) took one still starting (it had been started for an earlier claim's refill), ${misses} (${pct(misses)}) started cold.`,
      `  Idle cost, ${idle.containers} waiting containers over ${fmtNum(idle.intervalMs / 1000)} s: memory ${fmtNum(idle.cgroupBytes / 1e6, 1)} MB in each container's cgroup (memory.usage_in_bytes, mean) and ${fmtNum(idle.shimBytes / 1e6, 1)} MB RSS of its containerd shim; CPU ${fmtNum(idle.cgroupCpuMs, 1)} ms in the containers' cgroups and ${fmtNum(idle.shimCpuMs)} ms in their shims (${fmtNum(idle.cpuPercent, 2)}% of one core).`,
    ],
  };
}

interface IdleCost {
  containers: number;
  intervalMs: number;
  cgroupBytes: number;
  shimBytes: number;
  cgroupCpuMs: number;
  shimCpuMs: number;
  cpuPercent: number;
}

/** Reads the idle pool's containers (cgroup v1: /sys/fs/cgroup/<controller><the container's path in it>). */
async function idleCost(berth: InProcessBerth, intervalMs: number): Promise<IdleCost> {
  const ids = (
    await execa("docker", [
      "ps",
      "-q",
      "--no-trunc",
      "--filter",
      `label=${LABEL_NAMESPACE}=${berth.namespace}`,
      "--filter",
      `label=${LABEL_POOL}`,
    ])
  ).stdout
    .split("\n")
    .filter(Boolean);
  const shims = await shimPids(ids);
  const cgroups = await Promise.all(ids.map((id) => containerCgroups(id)));
  const cg = (ctl: string, paths: ReadonlyMap<string, string>, file: string) =>
    readFile(`/sys/fs/cgroup/${ctl}${paths.get(ctl) ?? "/missing"}/${file}`, "utf8").then(Number, () => NaN);
  const cpu = async () => ({
    cgroupNs: sum(await Promise.all(cgroups.map((paths) => cg("cpuacct", paths, "cpuacct.usage")))),
    shimTicks: sum(await Promise.all(shims.map((pid) => procTicks(pid)))),
  });
  const memory = await Promise.all(cgroups.map((paths) => cg("memory", paths, "memory.usage_in_bytes")));
  const shimRss = await Promise.all(shims.map((pid) => procRss(pid)));
  const c0 = await cpu();
  await sleep(intervalMs);
  const c1 = await cpu();
  const cgroupCpuMs = (c1.cgroupNs - c0.cgroupNs) / 1e6;
  const shimCpuMs = (c1.shimTicks - c0.shimTicks) * 10;
  return {
    containers: ids.length,
    intervalMs,
    cgroupBytes: mean(memory),
    shimBytes: mean(shimRss),
    cgroupCpuMs,
    shimCpuMs,
    cpuPercent: (100 * (cgroupCpuMs + shimCpuMs)) / intervalMs,
  };
}

/** A container's cgroup path per v1 controller, from its first process's /proc/<pid>/cgroup (its parent varies). */
async function containerCgroups(id: string): Promise<Map<string, string>> {
  const pid = (await execa("docker", ["inspect", "-f", "{{.State.Pid}}", id])).stdout.trim();
  const lines = (await readFile(`/proc/${pid}/cgroup`, "utf8").catch(() => "")).split("\n");
  const paths = new Map<string, string>();
  for (const line of lines) {
    const [, controllers = "", where = ""] = line.split(":");
    for (const ctl of controllers.split(",")) paths.set(ctl, where);
  }
  return paths;
}

/** The containerd shim process of each container (`containerd-shim-runc-v2 … -id <container id>`). */
async function shimPids(ids: readonly string[]): Promise<number[]> {
  const ps = await execa("ps", ["-eo", "pid=,args="]);
  return ps.stdout
    .split("\n")
    .filter((l) => l.includes("containerd-shim") && ids.some((id) => l.includes(id)))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

async function procTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(rest[11]) + Number(rest[12]);
}

async function procRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN) * 1024;
}
