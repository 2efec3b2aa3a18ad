// Benchmark (not a test): one cleanup pass over N finished tasks (records in Redis, workspace + archive on disk)
// against a bare `rm -rf` of an identical tree, in the same run, round by round. Figure 6 of `npm run bench`, or
// standalone:
//
//   npx tsc -p tsconfig.bench.json && node dist-bench/bench/cleanup.js [--tasks 2000] [--files 20] [--rounds 3]
//
// Needs Redis (BERTH_REDIS_URL) and Docker (buildDeps checks it), like the server. Uses its own namespace and a
// temporary directory, and removes both at the end.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { pino } from "pino";
import type { Deps } from "../src/app/deps.js";
import { createServices, type Services } from "../src/app/services.js";
import { sweep } from "../src/cleanup/sweep.js";
import { loadConfig } from "../src/config/config.js";
import { newTaskId, workspaceName, type TaskRecord } from "../src/domain/task.js";
import { buildDeps } from "../src/app/build-deps.js";
import { Cleanup, formatTable, median, row, unlinkNamespaceKeys, type BenchContext, type FigureResult } from "./lib.js";

const { values } = parseArgs({
  options: {
    tasks: { type: "string", default: "2000" },
    files: { type: "string", default: "20" },
    rounds: { type: "string", default: "3" },
  },
  strict: false,
  allowPositionals: true,
});
const TASKS = Number(values.tasks);
const FILES = Number(values.files);
const ROUNDS = Number(values.rounds);
const CONTENT = randomBytes(1024);
const LIMITS = { memoryMb: 512, cpus: 1, pids: 256, diskMb: 1024 };

async function pool<T>(items: readonly T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** One task's files: ~FILES small files in a few subdirectories, and a small archive. */
async function writeTaskFiles(wsRoot: string, arRoot: string, name: string): Promise<void> {
  const ws = path.join(wsRoot, name);
  await mkdir(path.join(ws, "src", "lib"), { recursive: true });
  await mkdir(path.join(ws, "out"), { recursive: true });
  for (let i = 0; i < FILES; i++) await writeFile(path.join(ws, ["src", "src/lib", "out"][i % 3] ?? "", `f${i}.txt`), CONTENT);
  await writeFile(path.join(arRoot, `${name}.tar.gz`), CONTENT);
}

/** A finished, already-expired task: record, index entries, workspace and archive. */
async function makeTask(deps: Deps, services: Services, now: number): Promise<string> {
  const id = newTaskId();
  const createdAtMs = now - 60_000;
  const record: TaskRecord = {
    id,
    tenant: "bench",
    workspace: workspaceName(createdAtMs, id),
    status: "queued",
    image: "bench",
    command: ["true"],
    labels: {},
    createdAtMs,
    startedAtMs: null,
    finishedAtMs: null,
    expiresAtMs: null,
    exitCode: null,
    reason: null,
    message: null,
    timeoutSeconds: 60,
    limits: LIMITS,
    network: "none",
    ttlSeconds: 1,
    archive: null,
    archiveSkipped: [],
    outputTruncated: false,
    cancelRequested: false,
    host: null,
  };
  const spec = {
    command: ["true"],
    image: "bench",
    env: {},
    files: {},
    fromTask: null,
    timeoutSeconds: 60,
    limits: LIMITS,
    network: "none" as const,
    ttlSeconds: 1,
  };
  await services.store.create(record, spec, { maxActive: 1e9, idempotencyKeyHash: null, idempotencyTtlSeconds: 60 });
  await services.store.transition(
    id,
    "bench",
    ["queued"],
    {
      status: "succeeded",
      exitCode: 0,
      startedAtMs: createdAtMs,
      finishedAtMs: now - 2000,
      expiresAtMs: now - 1000,
      host: deps.host,
      archive: { bytes: CONTENT.length, sha256: "0".repeat(64) },
      workspaceBytes: FILES * CONTENT.length,
    },
    true,
  );
  await writeTaskFiles(deps.config.dirs.workspaces, deps.config.dirs.archives, record.workspace);
  return id;
}

/** Figure 6 of `npm run bench` (bench/run.ts picks this export up): one pass vs `rm -rf`, interleaved per round. */
export async function runCleanupBench(ctx: BenchContext): Promise<FigureResult> {
  const rounds = ctx.quick ? 1 : Math.max(ROUNDS, ctx.reps.other);
  const root = await mkdtemp(path.join(ctx.root, "cleanup-"));
  const namespace = `berth-bench-${ctx.runId}-cleanup`;
  const config = loadConfig({
    ...process.env,
    BERTH_WORKSPACE_DIR: `${root}/berth/workspaces`,
    BERTH_ARCHIVE_DIR: `${root}/berth/archives`,
    BERTH_DISK_BUDGET_BYTES: "0",
  });
  const deps = await buildDeps(config, pino({ level: "silent" }), namespace);
  const services = createServices(deps);
  const undo = ctx.cleanup.add(`cleanup bench namespace ${namespace}`, async () => {
    await services.queue.close().catch(() => undefined);
    await unlinkNamespaceKeys(deps.redis, namespace);
    await deps.close();
    await rm(root, { recursive: true, force: true });
  });
  const sweeps: number[] = [];
  const rms: number[] = [];
  let bytes = 0;
  try {
    for (let round = 1; round <= rounds; round++) {
      const now = Date.now();
      await pool(
        Array.from({ length: TASKS }, (_, i) => i),
        32,
        () => makeTask(deps, services, now),
      );
      // The identical tree for rm: same layout, same files, no records.
      const bare = path.join(root, `bare-${round}`);
      await mkdir(path.join(bare, "workspaces"), { recursive: true });
      await mkdir(path.join(bare, "archives"), { recursive: true });
      await pool(
        Array.from({ length: TASKS }, (_, i) => i),
        32,
        (i) => writeTaskFiles(path.join(bare, "workspaces"), path.join(bare, "archives"), `task-${now}-bare${String(i).padStart(8, "0")}`),
      );

      let t = performance.now();
      const result = await sweep(deps, services);
      const sweepMs = performance.now() - t;
      if (result.removed.length !== TASKS || result.errors.length > 0) {
        throw new Error(
          `sweep removed ${result.removed.length} of ${TASKS} with ${result.errors.length} error(s): ${JSON.stringify(result.errors.slice(0, 3))}`,
        );
      }
      t = performance.now();
      await execa("rm", ["-rf", "--one-file-system", "--", bare]);
      const rmMs = performance.now() - t;
      sweeps.push(sweepMs);
      rms.push(rmMs);
      bytes = result.bytesReclaimed;
      ctx.log(`  cleanup round ${round}/${rounds}: sweep ${sweepMs.toFixed(0)} ms, rm -rf ${rmMs.toFixed(0)} ms`);
    }
  } finally {
    await undo();
  }
  const r = row(
    `Cleanup: ${TASKS.toLocaleString("en-US")} expired tasks x ${FILES} files`,
    "ms",
    sweeps,
    rms,
    "one rm -rf of an identical tree",
  );
  return {
    rows: [r],
    details: [
      `Cleanup: one pass over ${TASKS} expired tasks (${(bytes / 2 ** 20).toFixed(1)} MiB on disk) took a median ${median(sweeps).toFixed(0)} ms, ` +
        `${(median(sweeps) / TASKS).toFixed(2)} ms per task. Per chunk of tasks: one Redis round trip for their locks, one to re-read ` +
        "their records, one `rm -rf` process for their workspaces and one for their archives, their log streams, one round trip for the transitions to " +
        "expired and one to release the locks; a few chunks at once. " +
        `The bare rm -rf of the same tree took ${median(rms).toFixed(0)} ms.`,
    ],
  };
}

// Standalone: node dist-bench/bench/cleanup.js [--tasks N] [--files N] [--rounds N]
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const cleanup = new Cleanup();
  const log = (msg: string) => void process.stderr.write(`[bench] ${msg}\n`);
  const root = await mkdtemp(path.join(tmpdir(), "berth-bench-cleanup-"));
  cleanup.add(`temp dir ${root}`, () => rm(root, { recursive: true, force: true }));
  const ctx: BenchContext = { quick: false, reps: { latency: 1, other: ROUNDS }, runId: randomUUID().slice(0, 6), root, cleanup, log };
  try {
    const result = await runCleanupBench(ctx);
    process.stdout.write(`${formatTable(result.rows)}\n\n${result.details.join("\n")}\n`);
  } catch (err) {
    log(`cleanup bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exitCode = 1;
  } finally {
    await cleanup.runAll(log);
  }
}
