// `npm run bench` (= node dist/bench/run.js): measures berth against the bare tools in the same run, interleaved,
// and prints one table of medians and ratios, then notes on where berth's time goes. Never asserted in tests.
//   --quick       one repetition of everything (a smoke run)
//   --only=1,3    only these figures (1 latency, 2 throughput and the warm pool's, 3 output, 4 archive, 5 memory,
//                 6 cleanup, 7 archive to an object store, 8 throughput with two worker processes)
import { randomBytes } from "node:crypto";
import { access, rm } from "node:fs/promises";
import { cpus } from "node:os";
import { execa } from "execa";
import { archiveBench } from "./archive.js";
import { archiveStoreBench, workersBench } from "./hosts.js";
import { latencyBench } from "./latency.js";
import {
  CLI_PATH,
  Cleanup,
  IMAGE,
  formatTable,
  makeRoot,
  removeBaselineContainers,
  startInProcess,
  type BenchContext,
  type FigureResult,
  type Row,
} from "./lib.js";
import { memoryBench } from "./memory.js";
import { outputBench } from "./output.js";
import { throughputBench } from "./throughput.js";
import { warmPoolBench } from "./warm-pool.js";

/** The warm pool of the in-process berth of figures 1 and 2 (BERTH_WARM_POOL). */
const POOL = 4;

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

/**
 * The cleanup figure lives in bench/cleanup.ts (written separately). It is picked up if it exists and exports
 * `runCleanupBench(ctx: BenchContext)` (or `cleanupBench`, or a default function) returning a Row, Row[] or
 * FigureResult; otherwise the table says it was not run.
 */
async function cleanupFigure(ctx: BenchContext): Promise<FigureResult> {
  const url = new URL("./cleanup.js", import.meta.url);
  try {
    await access(url);
  } catch {
    return { rows: [], details: ["Cleanup figure: bench/cleanup.ts is not there yet (hook: cleanupFigure in bench/run.ts)."] };
  }
  const mod = (await import(url.href)) as Record<string, unknown>;
  const fn = mod.runCleanupBench ?? mod.cleanupBench ?? mod.default;
  if (typeof fn !== "function") {
    return {
      rows: [],
      details: [`Cleanup figure: bench/cleanup.ts exports no runCleanupBench (exports: ${Object.keys(mod).join(", ")}).`],
    };
  }
  ctx.log("cleanup figure (bench/cleanup.ts)");
  const out = (await (fn as (c: BenchContext) => Promise<unknown>)(ctx)) as Row | Row[] | FigureResult;
  if (Array.isArray(out)) return { rows: out, details: [] };
  if ("rows" in out) return out;
  return { rows: [out], details: [] };
}

async function preflight(figures: Set<number>): Promise<void> {
  const image = await execa("docker", ["image", "inspect", "--format", "{{.Id}}", IMAGE], { reject: false });
  if (image.failed)
    throw new Error(`${IMAGE} is not on this Docker engine (is dockerd up? run ./scripts/up first): ${image.stderr.trim()}`);
  if (figures.has(3) || figures.has(5) || figures.has(8)) {
    await access(CLI_PATH).catch(() => {
      throw new Error(`${CLI_PATH} is missing; build first: npx tsc -p tsconfig.build.json`);
    });
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const quick = argv.includes("--quick");
  const onlyArg = argv.find((a) => a.startsWith("--only="));
  const figures = new Set(onlyArg ? onlyArg.slice(7).split(",").map(Number) : [1, 2, 3, 4, 5, 6, 7, 8]);
  const runId = randomBytes(3).toString("hex");
  const root = await makeRoot(runId);
  const cleanup = new Cleanup();
  cleanup.add(`temp dir ${root}`, () => rm(root, { recursive: true, force: true }));
  cleanup.add("baseline containers", () => removeBaselineContainers(runId));
  const abort = new AbortController();
  const ctx: BenchContext = {
    quick,
    reps: quick ? { latency: 1, other: 1 } : { latency: 5, other: 3 },
    runId,
    root,
    cleanup,
    signal: abort.signal,
    log,
  };

  let interrupted = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => {
      if (interrupted) return log(`${signal} again: still cleaning up`);
      interrupted = true;
      log(`${signal}: stopping and cleaning up`);
      abort.abort(new Error(`interrupted by ${signal}`));
      void cleanup.runAll(log).finally(() => process.exit(130));
    });
  }

  const rows: Row[] = [];
  const details: string[] = [];
  const failures: string[] = [];
  const started = Date.now();
  const run = async (n: number, name: string, fn: () => Promise<FigureResult>) => {
    if (!figures.has(n) || interrupted) return;
    try {
      const r = await fn();
      rows.push(...r.rows);
      details.push(...r.details, "");
    } catch (err) {
      const msg = err instanceof Error ? (err.stack ?? err.message) : String(err);
      failures.push(`figure ${n} (${name}) failed: ${msg}`);
      log(`figure ${n} (${name}) failed: ${msg}`);
    }
  };

  try {
    await preflight(figures);
    log(`run ${runId}, ${quick ? "quick (1 repetition)" : "full"}, temp dir ${root}`);
    if (figures.has(1) || figures.has(2)) {
      // In-process berths (own namespaces) for figures 1 and 2, with a warm pool of 4 and without one; one task at a
      // time in 1 does not use the 4 slots.
      const inProcess = (env: Record<string, string>) =>
        startInProcess(ctx, { BERTH_CONCURRENCY: "4", ...env }).catch((err: unknown) => {
          failures.push(`in-process berth did not start: ${err instanceof Error ? err.message : String(err)}`);
          return null;
        });
      const warm = await inProcess({ BERTH_WARM_POOL: String(POOL) });
      const cold = figures.has(1) ? await inProcess({ BERTH_WARM_POOL: "0" }) : null;
      if (warm && cold) await run(1, "latency", () => latencyBench(ctx, warm, cold, POOL));
      await cold?.close();
      if (warm) {
        await run(2, "throughput", () => throughputBench(ctx, warm, POOL));
        await run(2, "warm pool", () => warmPoolBench(ctx, warm, POOL));
        await warm.close();
      }
    }
    await run(3, "50 MB output", () => outputBench(ctx));
    await run(4, "archive", () => archiveBench(ctx));
    await run(5, "memory", () => memoryBench(ctx));
    await run(6, "cleanup", () => cleanupFigure(ctx));
    await run(7, "archive to an object store", () => archiveStoreBench(ctx));
    await run(8, "two worker processes", () => workersBench(ctx));
  } catch (err) {
    failures.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
  } finally {
    await cleanup.runAll(log);
  }

  const when = new Date().toISOString().slice(0, 16).replace("T", " ");
  process.stdout.write(
    [
      `berth benchmarks — ${when} UTC, ${cpus().length} cores, ${quick ? "--quick (1 run each)" : "full"}, ${((Date.now() - started) / 1000).toFixed(0)} s`,
      "",
      formatTable(rows),
      "",
      "Where the time goes:",
      ...details,
      ...(failures.length > 0 ? ["FAILED:", ...failures] : []),
      "",
    ].join("\n"),
  );
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(err instanceof Error ? (err.stack ?? err.message) : String(err));
    process.exit(1);
  },
);
