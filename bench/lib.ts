// Shared pieces of the benchmark suite: statistics, interleaved runs, the table, temp dirs, a cleanup stack,
// the baseline `docker run` flags, berth in-process (own namespace) or as a separate `serve` process,
// HTTP and SSE clients, /proc readings, and timing hooks on the Docker client (bench-only instrumentation).
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chown, cp, mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import http from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { Cluster, Redis } from "ioredis";
import { pino } from "pino";
import { buildServer } from "../src/api/server.js";
import { createServices } from "../src/app/services.js";
import { loadConfig, type Config } from "../src/config/config.js";
import { FrameParser, MULTIPLEXED } from "../src/client/output.js";
import { SseParser, type SseMessage } from "../src/client/sse.js";
import type { TaskView } from "../src/contract/types.js";
import { buildDeps } from "../src/app/build-deps.js";
import { startWorker } from "../src/queue/worker.js";
import { createDockerClient, DockerRuntime } from "../src/runner/docker-runtime.js";
import { LABEL_NAMESPACE, LABEL_TASK_ID } from "../src/runner/labels.js";
import type { WarmPoolStats } from "../src/runner/warm-pool.js";
import { createKeys } from "../src/store/keys.js";

export const IMAGE = "berth-runner:latest";
export const REDIS_URL = process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379";
/** Label put on every baseline container, so a failed run's leftovers can be found and removed. */
export const BENCH_LABEL = "berth.bench";
const here = path.dirname(fileURLToPath(import.meta.url));
/** The compiled CLI (tsconfig.build.json keeps rootDir ".", so it is dist/src/cli/main.js). */
export const CLI_PATH = path.resolve(here, "../src/cli/main.js");

// ---------------------------------------------------------------- rows, statistics, table

/** One line of the table. `berth` and `baseline` are medians of the samples; ratio = berth / baseline. */
export interface Row {
  figure: string;
  unit: string;
  berth: number | null;
  baseline: number | null;
  /** What the baseline is, in a few words. */
  baselineIs: string;
  runs: number;
  /** Overrides berth / baseline (e.g. when a ratio of other numbers is more telling). */
  ratio?: number | null;
}

/** What every figure receives. */
export interface BenchContext {
  readonly quick: boolean;
  /** Repetitions for the latency figure, and for the others. */
  readonly reps: { latency: number; other: number };
  readonly runId: string;
  /** Root of every temp dir of this run (removed at the end). */
  readonly root: string;
  readonly cleanup: Cleanup;
  /** Aborted on SIGINT/SIGTERM: no new run starts, and baseline commands get SIGTERM (docker run passes it on). */
  readonly signal?: AbortSignal;
  /** Progress line on stderr (the table goes to stdout). */
  log(msg: string): void;
}

/** What a figure returns: table rows, and notes on where the time goes. */
export interface FigureResult {
  rows: Row[];
  details: string[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The value at fraction `p` (0..1) of the sorted samples (nearest rank). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
}

export const mean = (xs: readonly number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
export const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);

/** Means of the first and last quarter of a time series (at least one sample each). */
export function quarterMeans(xs: readonly number[]): { first: number; last: number } {
  const q = Math.max(1, Math.floor(xs.length / 4));
  return { first: mean(xs.slice(0, q)), last: mean(xs.slice(-q)) };
}

export function row(figure: string, unit: string, berth: readonly number[], baseline: readonly number[] | null, baselineIs: string): Row {
  return { figure, unit, berth: median(berth), baseline: baseline ? median(baseline) : null, baselineIs, runs: berth.length };
}

/**
 * Runs each contender `reps` times, interleaved: A1 B1 C1 A2 B2 C2 ... (so background noise hits all alike),
 * after `warmup` untimed rounds. Each function returns its own measurement (ms, bytes...).
 */
export async function interleave(
  reps: number,
  contenders: readonly (() => Promise<number>)[],
  opts: { warmup?: number; log?: (msg: string) => void; names?: readonly string[]; signal?: AbortSignal } = {},
): Promise<number[][]> {
  const out = contenders.map(() => [] as number[]);
  for (let r = -(opts.warmup ?? 0); r < reps; r++) {
    for (const [i, fn] of contenders.entries()) {
      opts.signal?.throwIfAborted();
      const v = await fn();
      if (r >= 0) out[i]?.push(v);
      opts.log?.(`  ${r < 0 ? "warm-up" : `run ${r + 1}/${reps}`} ${opts.names?.[i] ?? `#${i}`}: ${fmtNum(v)}`);
    }
  }
  return out;
}

export const fmtNum = (v: number, digits = 0): string =>
  Number.isFinite(v) ? v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "—";

function fmtValue(v: number | null, unit: string): string {
  if (v === null || !Number.isFinite(v)) return "—";
  if (unit === "ms") return `${fmtNum(v)} ms`;
  if (unit === "s") return `${fmtNum(v / 1000, 2)} s`; // samples are kept in ms
  if (unit === "MB") return `${fmtNum(v / 1e6, 1)} MB`; // samples are kept in bytes
  return `${fmtNum(v, 2)} ${unit}`;
}

export function ratioOf(r: Row): number | null {
  if (r.ratio !== undefined) return r.ratio;
  if (r.berth === null || r.baseline === null || r.baseline === 0) return null;
  return r.berth / r.baseline;
}

/** The table, as Markdown (it is also what README.md shows). */
export function formatTable(rows: readonly Row[]): string {
  const head = ["Figure", "berth (median)", "baseline (median)", "ratio berth/baseline", "runs", "baseline is"];
  // A "|" inside a cell (even in `code`) would split it in Markdown: escape it.
  const lines = rows.map((r) => {
    const ratio = ratioOf(r);
    const cells = [
      r.figure,
      fmtValue(r.berth, r.unit),
      fmtValue(r.baseline, r.unit),
      ratio === null ? "—" : `${fmtNum(ratio, 2)}×`,
      String(r.runs),
      r.baselineIs,
    ];
    return cells.map((c) => c.replace(/\|/g, "\\|"));
  });
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const fmt = (cells: readonly string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [fmt(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...lines.map(fmt)].join("\n");
}

// ---------------------------------------------------------------- cleanup and temp dirs

/** A stack of undo steps, run last-in first-out, each at most once, errors reported but not fatal. */
export class Cleanup {
  private steps: { what: string; fn: () => Promise<void> }[] = [];
  private running: Promise<void> | undefined;

  /** Adds a step; the returned function runs it now (and removes it from the stack). */
  add(what: string, fn: () => Promise<void>): () => Promise<void> {
    const step = { what, fn };
    this.steps.push(step);
    return async () => {
      const i = this.steps.indexOf(step);
      if (i === -1) return;
      this.steps.splice(i, 1);
      await fn();
    };
  }

  /** Runs every step; a second call (signal handler and normal exit at once) waits for the same run. */
  runAll(log: (msg: string) => void): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop() as { what: string; fn: () => Promise<void> };
        try {
          await step.fn();
        } catch (err) {
          log(`cleanup: ${step.what} failed: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
    })();
    return this.running;
  }
}

export async function makeRoot(runId: string): Promise<string> {
  return mkdtemp(path.join(tmpdir(), `berth-bench-${runId}-`));
}

const baseConfig = (): Config => loadConfig({ BERTH_REDIS_URL: REDIS_URL });

/** A fresh directory the runner user owns, as berth makes a workspace (0700). */
export async function runnerDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const [uid = "1000", gid = "1000"] = baseConfig().worker.runnerUser.split(":");
  if (process.getuid?.() === 0) await chown(dir, Number(uid), Number(gid));
  return dir;
}

// ---------------------------------------------------------------- the baseline: plain docker run

/**
 * `docker run --rm` with what berth asks the engine for (src/runner/docker-runtime.ts toCreateOptions), defaults
 * taken from the same config: user, caps, no-new-privileges, read-only root, /tmp tmpfs, no network, memory =
 * swap, CPUs, pids, init, ipc private, ulimits, bind mount at /workspace, no log driver.
 */
export function dockerRunArgs(workspace: string, command: readonly string[], runId: string): string[] {
  const c = baseConfig();
  const mem = `${c.limits.defaults.memoryMb}m`;
  return [
    "run",
    "--rm",
    "--label",
    `${BENCH_LABEL}=${runId}`,
    "--user",
    c.worker.runnerUser,
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--read-only",
    "--tmpfs",
    `/tmp:rw,nosuid,nodev,size=${c.worker.tmpfsMb * 1024 * 1024},mode=1777`,
    "--network",
    "none",
    "--memory",
    mem,
    "--memory-swap",
    mem,
    "--cpus",
    String(c.limits.defaults.cpus),
    "--pids-limit",
    String(c.limits.defaults.pids),
    "--init",
    "--ipc",
    "private",
    "--ulimit",
    "nofile=4096:4096",
    "--ulimit",
    "core=0:0",
    "--mount",
    `type=bind,source=${workspace},target=/workspace`,
    "-w",
    "/workspace",
    "--log-driver",
    "none",
    IMAGE,
    ...command,
  ];
}

/** Quotes one word for sh. */
export const shq = (s: string): string => (/^[A-Za-z0-9_.,:=/@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** Removes baseline containers a failed run left (found by this run's label). */
export async function removeBaselineContainers(runId: string): Promise<void> {
  const r = await execa("docker", ["ps", "-aq", "--filter", `label=${BENCH_LABEL}=${runId}`], { reject: false });
  const ids = r.stdout.split("\n").filter(Boolean);
  if (ids.length > 0) await execa("docker", ["rm", "-f", ...ids], { reject: false });
}

// ---------------------------------------------------------------- timing hooks on the Docker client

/** When each Docker call of one container began and ended (epoch ms, sub-ms precision). */
export interface ContainerTimes {
  create?: [number, number];
  attach?: [number, number];
  start?: [number, number];
  /** The last inspect (a warm container is inspected once when started, and again after its task's exit). */
  inspect?: [number, number];
  remove?: [number, number];
  /** A warm container's claim: it is given its task's name. */
  rename?: [number, number];
}

export const nowMs = (): number => performance.timeOrigin + performance.now();

type AnyFn = (...args: unknown[]) => Promise<unknown>;

/**
 * Wraps createContainer on this client so every container it makes records when its attach/start/inspect/remove
 * calls began and ended, keyed by task id (from the berth.task-id label; a warm pool's container, made before any
 * task, is keyed by its task once it is renamed for it). Adds microseconds per call.
 */
function instrumentDocker(docker: object, times: Map<string, ContainerTimes>): void {
  const d = docker as { createContainer: AnyFn };
  const create = d.createContainer.bind(docker);
  d.createContainer = async (...args: unknown[]) => {
    const opts = args[0] as { Labels?: Record<string, string> };
    const taskId = opts.Labels?.[LABEL_TASK_ID];
    const t: ContainerTimes = {};
    if (taskId) times.set(taskId, t);
    const t0 = nowMs();
    const container = (await create(...args)) as Record<string, unknown>;
    t.create = [t0, nowMs()];
    for (const m of ["attach", "start", "inspect", "remove", "rename"] as const) {
      const fn = (container[m] as AnyFn).bind(container);
      container[m] = async (...a: unknown[]) => {
        const s = nowMs();
        try {
          return await fn(...a);
        } finally {
          if (m === "inspect") t.inspect = [s, nowMs()];
          else t[m] ??= [s, nowMs()];
          const name = m === "rename" ? (a[0] as { name?: string }).name : undefined;
          const claimed = name ? /-task-([A-Za-z0-9_-]+)$/.exec(name)?.[1] : undefined;
          if (claimed) times.set(claimed, t);
        }
      };
    }
    return container;
  };
}

// ---------------------------------------------------------------- berth in-process (own namespace)

export interface InProcessBerth {
  readonly url: string;
  readonly namespace: string;
  readonly root: string;
  /** Docker call times per task id. */
  readonly times: Map<string, ContainerTimes>;
  /** The worker's warm pool: what it served, and how many containers wait now (null without one). */
  warmPool(): WarmPoolStats | null;
  close(): Promise<void>;
}

/** Defaults every bench server gets: no rate limit (the bench polls fast), room for its 100 followers, quiet logs. */
export const BENCH_ENV: Record<string, string> = {
  BERTH_RATE_LIMIT_PER_MINUTE: "0",
  BERTH_TENANT_MAX_LOG_STREAMS: "1000",
  BERTH_STOP_GRACE_SECONDS: "2",
  BERTH_SHUTDOWN_TIMEOUT_SECONDS: "5",
};

/** API + worker in this process, as test/helpers/harness.ts does, under a namespace of its own. */
export async function startInProcess(ctx: BenchContext, env: Record<string, string>): Promise<InProcessBerth> {
  const namespace = `berth-bench-${ctx.runId}-${randomUUID().slice(0, 4)}`;
  const root = path.join(ctx.root, namespace);
  const config = loadConfig({
    BERTH_REDIS_URL: REDIS_URL,
    BERTH_WORKSPACE_DIR: `${root}/workspaces`,
    BERTH_ARCHIVE_DIR: `${root}/archives`,
    BERTH_PORT: "0",
    ...BENCH_ENV,
    ...env,
  });
  const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? "silent" });
  const raw = await buildDeps(config, logger, namespace);
  const times = new Map<string, ContainerTimes>();
  const docker = await createDockerClient();
  instrumentDocker(docker, times);
  const deps = { ...raw, runtime: new DockerRuntime(docker) };
  const services = createServices(deps);
  // Registered before anything else can fail, so a half-started server is still swept.
  let app: Awaited<ReturnType<typeof buildServer>> | undefined;
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined;
  const close = ctx.cleanup.add(`in-process berth ${namespace}`, async () => {
    await app?.close().catch(() => undefined);
    await worker?.close().catch(() => undefined);
    for (const c of await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: namespace })) await deps.runtime.removeById(c.id);
    await services.queue.close().catch(() => undefined);
    await unlinkNamespaceKeys(deps.redis, namespace);
    await raw.close();
    await rm(root, { recursive: true, force: true });
  });
  worker = await startWorker(deps, services.keys, services.store, services.logs, services.endings);
  app = await buildServer(deps, services);
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  return { url, namespace, root, times, warmPool: () => worker?.warmPoolStats() ?? null, close };
}

/**
 * Removes every key of a namespace (each of its SCAN patterns, keys.ts). The bench runs against one Redis
 * (BERTH_REDIS_URL), never a cluster.
 */
export async function unlinkNamespaceKeys(redis: Redis | Cluster, namespace: string): Promise<number> {
  if (redis instanceof Cluster) throw new Error("the bench runs against one Redis, not a Redis Cluster");
  let n = 0;
  for (const pattern of createKeys(namespace).patterns) n += await unlinkKeys(redis, pattern);
  return n;
}

async function unlinkKeys(redis: Redis, pattern: string): Promise<number> {
  let cursor = "0";
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    if (keys.length > 0) n += await redis.unlink(...keys);
  } while (cursor !== "0");
  return n;
}

// ---------------------------------------------------------------- berth as a separate `serve` process

export interface ServeProcess {
  readonly url: string;
  readonly pid: number;
  readonly namespace: string;
  /** Task ids submitted to this server (for reference; the sweep goes by namespace). */
  readonly taskIds: Set<string>;
  readonly logFile: string;
  close(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * `node <build>/src/cli/main.js serve` as its own process (API, worker, cleanup), in temp dirs, on a free port,
 * under a namespace of its own (BERTH_NAMESPACE). Stopped with SIGTERM (SIGKILL after 20 s); its containers and
 * its Redis keys are removed afterwards. `opts.role` runs `api` or `worker` instead (a worker must advertise an
 * address, BERTH_ADVERTISE_URL, to answer the health check); `opts.namespace` shares one between processes.
 */
export async function startServe(
  ctx: BenchContext,
  name: string,
  env: Record<string, string>,
  opts: { role?: "serve" | "api" | "worker"; namespace?: string; port?: number } = {},
): Promise<ServeProcess> {
  const dir = path.join(ctx.root, `serve-${name}`);
  await mkdir(dir, { recursive: true });
  const port = opts.port ?? (await freePort());
  const namespace = opts.namespace ?? `berth-bench-${ctx.runId}-${name}`;
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("BERTH_")));
  const logFile = path.join(dir, "serve.log");
  const out = createWriteStream(logFile);
  await new Promise((r) => out.once("open", r));
  // Diagnostics: BENCH_SERVE_NODE_ARGS="--cpu-prof" or "--trace-gc" (profiles and the log are copied out at the end).
  const nodeArgs = (process.env.BENCH_SERVE_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, CLI_PATH, opts.role ?? "serve"], {
    // cwd without a .env, so nothing but this env configures it.
    cwd: dir,
    env: {
      ...inherited,
      BERTH_REDIS_URL: REDIS_URL,
      BERTH_NAMESPACE: namespace,
      BERTH_PORT: String(port),
      BERTH_HOST: "127.0.0.1",
      BERTH_WORKSPACE_DIR: path.join(dir, "workspaces"),
      BERTH_ARCHIVE_DIR: path.join(dir, "archives"),
      LOG_LEVEL: "warn",
      ...BENCH_ENV,
      ...env,
    },
    stdio: ["ignore", out, out],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const taskIds = new Set<string>();
  const close = ctx.cleanup.add(`serve process ${name}`, async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killed = await Promise.race([exited.then(() => false), sleep(20_000).then(() => true)]);
      if (killed) {
        child.kill("SIGKILL");
        await exited;
        // A killed worker leaves its workspace root mounted nosuid,nodev (src/workspace/mount.ts).
        await execa("umount", ["-l", "--", path.join(dir, "workspaces")], { reject: false });
      }
    }
    out.end();
    if (nodeArgs.length > 0) {
      const keep = path.join(tmpdir(), `berth-bench-artifacts-${ctx.runId}`, name);
      await mkdir(keep, { recursive: true });
      for (const f of await readdir(dir))
        if (f.endsWith(".cpuprofile") || f.endsWith(".heapprofile") || f === "serve.log") await cp(path.join(dir, f), path.join(keep, f));
      ctx.log(`serve ${name}: log and profiles kept in ${keep}`);
    }
    const r = await execa("docker", ["ps", "-aq", "--filter", `label=${LABEL_NAMESPACE}=${namespace}`], { reject: false });
    const ids = r.stdout.split("\n").filter(Boolean);
    if (ids.length > 0) await execa("docker", ["rm", "-f", ...ids], { reject: false });
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      await unlinkNamespaceKeys(redis, namespace);
    } finally {
      redis.disconnect();
    }
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${(await readFile(logFile, "utf8")).slice(-2000)}`);
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`serve did not answer within 30 s: ${(await readFile(logFile, "utf8")).slice(-2000)}`);
    await sleep(100);
  }
  return { url, pid: child.pid as number, namespace, taskIds, logFile, close };
}

// ---------------------------------------------------------------- HTTP helpers

export async function submitTask(url: string, body: unknown, track?: Set<string>): Promise<TaskView> {
  const res = await fetch(`${url}/v1/tasks`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 202 && res.status !== 200) throw new Error(`submit answered ${res.status}: ${text.slice(0, 500)}`);
  const view = JSON.parse(text) as TaskView;
  track?.add(view.id);
  return view;
}

export async function getJson<T>(url: string, urlPath: string): Promise<T> {
  const res = await fetch(`${url}${urlPath}`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${urlPath} answered ${res.status}: ${text.slice(0, 500)}`);
  return JSON.parse(text) as T;
}

export const isFinished = (v: { status: string }): boolean => v.status !== "queued" && v.status !== "running";

/**
 * Waits for the task's final view with long polls (`?waitSeconds=30`), as a client of the API would (`intervalMs`
 * only paces a server that answers early); throws unless it succeeded with an archive.
 */
export async function waitArchived(url: string, id: string, intervalMs = 10, timeoutMs = 300_000): Promise<TaskView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await getJson<TaskView>(url, `/v1/tasks/${id}?waitSeconds=30`);
    if (isFinished(v)) {
      if (v.status !== "succeeded" || !v.archive)
        throw new Error(`task ${id} ended ${v.status} (${v.reason ?? ""}: ${v.message ?? ""}), archive ${JSON.stringify(v.archive)}`);
      return v;
    }
    if (Date.now() > deadline) throw new Error(`task ${id} did not finish within ${timeoutMs} ms (status ${v.status})`);
    await sleep(intervalMs);
  }
}

export const ms = (iso: string | null): number => (iso === null ? NaN : Date.parse(iso));

// ---------------------------------------------------------------- SSE follower

export interface SseResult {
  stdoutBytes: number;
  stdoutLines: number;
  events: number;
  end: { status: string; exitCode: number | null } | null;
  /** Epoch ms of the first stdout byte, the last stdout byte, and the end event. */
  firstStdoutAt: number;
  lastStdoutAt: number;
  endAt: number;
}

/** Follows GET /v1/tasks/:id/logs as Server-Sent Events until `end` (or the connection closes). */
export function followSse(
  url: string,
  taskId: string,
  agent?: http.Agent,
  onStdout?: (text: string, receivedAtMs: number) => void,
): { done: Promise<SseResult>; abort(): void } {
  const result: SseResult = { stdoutBytes: 0, stdoutLines: 0, events: 0, end: null, firstStdoutAt: NaN, lastStdoutAt: NaN, endAt: NaN };
  let req: http.ClientRequest | undefined;
  const done = new Promise<SseResult>((resolve, reject) => {
    req = http.get(`${url}/v1/tasks/${taskId}/logs`, { headers: { accept: "text/event-stream" }, agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`SSE for ${taskId} answered ${res.statusCode}`));
      }
      res.setEncoding("utf8");
      // The SDK's parser: the bench reads the stream as clients do.
      const parser = new SseParser();
      res.on("data", (chunk: string) => {
        for (const m of parser.push(chunk)) handle(m);
      });
      res.on("end", () => resolve(result));
      res.on("close", () => resolve(result));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  const handle = ({ event, data }: SseMessage): void => {
    result.events++;
    if (event === "log") {
      const e = JSON.parse(data) as { stream: string; text: string };
      if (e.stream !== "stdout") return;
      const t = Date.now();
      if (Number.isNaN(result.firstStdoutAt)) result.firstStdoutAt = t;
      result.lastStdoutAt = t;
      result.stdoutBytes += Buffer.byteLength(e.text);
      onStdout?.(e.text, t);
      for (let i = e.text.indexOf("\n"); i !== -1; i = e.text.indexOf("\n", i + 1)) result.stdoutLines++;
    } else if (event === "end") {
      result.end = JSON.parse(data) as SseResult["end"];
      result.endAt = Date.now(); // the server ends the response right after `end`
    }
  };
  const wrapped = done.then(
    (r) => r,
    (err: unknown) => (result.end ? result : Promise.reject(err)),
  );
  return { done: wrapped, abort: () => req?.destroy() };
}

// ---------------------------------------------------------------- raw follower

export interface RawResult {
  stdoutBytes: number;
  /** Whether the response ended normally (the server ends it so only once the task has ended). */
  ended: boolean;
  /** Epoch ms of the first stdout byte, the last stdout byte, and the end of the response. */
  firstStdoutAt: number;
  lastStdoutAt: number;
  endAt: number;
}

/**
 * Follows GET /v1/tasks/:id/logs?follow=true in Docker's multiplexed framing, as the SDK and CLI do (the SDK's
 * frame parser), until the response ends.
 */
export function followRaw(url: string, taskId: string): Promise<RawResult> {
  const result: RawResult = { stdoutBytes: 0, ended: false, firstStdoutAt: NaN, lastStdoutAt: NaN, endAt: NaN };
  return new Promise<RawResult>((resolve, reject) => {
    const req = http.get(`${url}/v1/tasks/${taskId}/logs?follow=true`, { headers: { accept: MULTIPLEXED } }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`?follow=true for ${taskId} answered ${res.statusCode}`));
      }
      const parser = new FrameParser();
      res.on("data", (chunk: Buffer) => {
        const t = Date.now();
        for (const p of parser.push(chunk)) {
          if (p.stream !== "stdout") continue;
          if (Number.isNaN(result.firstStdoutAt)) result.firstStdoutAt = t;
          result.lastStdoutAt = t;
          result.stdoutBytes += p.data.length;
        }
      });
      res.on("end", () => {
        result.ended = parser.atBoundary;
        result.endAt = Date.now();
        resolve(result);
      });
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

// ---------------------------------------------------------------- /proc readings

/** VmRSS and VmHWM of a process, in bytes. */
export async function procMemory(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** User + system CPU time of a process so far, in ms (clock ticks of 10 ms on Linux). */
export async function procCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which is in parentheses and may hold spaces).
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14 and 15)
  return ticks * 10;
}

// ---------------------------------------------------------------- where a task's time goes

/** Consecutive phases of one task (they add up); `inspect` and `remove` run inside `after-exit`, alongside the archive. */
export const PHASES = [
  "api",
  "queue",
  "prepare",
  "claim",
  "create",
  "attach",
  "start",
  "run",
  "after-exit",
  "record+seen",
  "inspect",
  "remove",
] as const;
export type Phase = (typeof PHASES)[number];
const OVERLAPPED: readonly Phase[] = ["inspect", "remove"];

const PHASE_MEANING: Record<Phase, string> = {
  api: "POST sent → createdAt",
  queue: "createdAt → startedAt (BullMQ pick-up, record + spec read)",
  prepare: "startedAt → createContainer (cold) or rename (warm) called (workspace made, or a warm container taken)",
  claim: "warm: rename (the container gets the task's name while its directory becomes the workspace)",
  create: "createContainer",
  attach: "attach (the exit wait is registered alongside)",
  start: "start",
  run: "start (cold) or rename (warm) returned → inspect called (the command runs; the engine confirms its exit)",
  "after-exit": "inspect called → finishedAt (archive, alongside inspect, output drain and container removal)",
  "record+seen": "finishedAt → the bench saw the final view (record, end marker, long poll answered)",
  inspect: "inspect (OOM flag), within after-exit",
  remove: "container removal, within after-exit",
};

/**
 * Splits one task's latency into phases from its view's timestamps (ms precision) and the Docker call times the
 * instrumented client recorded (epoch ms, same clock, same process). NaN where a point is missing.
 */
export function taskPhases(v: TaskView, t: ContainerTimes | undefined, postAt: number, seenAt: number): Record<Phase, number> {
  const created = ms(v.createdAt);
  const started = ms(v.startedAt);
  const finished = ms(v.finishedAt);
  const d = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? NaN : b - a);
  // A warm container was created and started before its task: its claim (rename) is what the task waits for.
  const warm = t?.rename !== undefined;
  return {
    api: created - postAt,
    queue: started - created,
    prepare: d(started, warm ? t?.rename?.[0] : t?.create?.[0]),
    claim: warm ? d(t?.rename?.[0], t?.rename?.[1]) : NaN,
    create: warm ? NaN : d(t?.create?.[0], t?.create?.[1]),
    attach: warm ? NaN : d(t?.attach?.[0], t?.attach?.[1]),
    start: warm ? NaN : d(t?.start?.[0], t?.start?.[1]),
    run: d(warm ? t?.rename?.[1] : t?.start?.[1], t?.inspect?.[0]),
    "after-exit": d(t?.inspect?.[0], finished),
    "record+seen": seenAt - finished,
    inspect: d(t?.inspect?.[0], t?.inspect?.[1]),
    remove: d(t?.remove?.[0], t?.remove?.[1]),
  };
}

/** One line per phase: median over the samples, in ms, and its share of the summed medians. */
export function describePhases(samples: readonly Record<Phase, number>[], indent = "    "): string[] {
  const medians = PHASES.map((p) => median(samples.map((s) => s[p]).filter(Number.isFinite)));
  const total = sum(medians.filter((m, i) => Number.isFinite(m) && !OVERLAPPED.includes(PHASES[i] as Phase)));
  return PHASES.map((p, i) => {
    const m = medians[i] as number;
    const share = Number.isFinite(m) && !OVERLAPPED.includes(p) ? `${fmtNum((100 * m) / total)}%`.padStart(4) : "   —";
    return `${indent}${p.padEnd(12)} ${fmtNum(m, 1).padStart(8)} ms  ${share}  ${PHASE_MEANING[p]}`;
  });
}

/** Redis's own CPU time so far (INFO cpu, user + sys, all clients — other users of this Redis add noise), in ms. */
export async function redisCpuMs(): Promise<number> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const info = await r.info("cpu");
    const get = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, "m").exec(info)?.[1] ?? NaN);
    return (get("used_cpu_user") + get("used_cpu_sys")) * 1000;
  } finally {
    r.disconnect();
  }
}
