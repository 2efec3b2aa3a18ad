// Figure 2: 40 trivial tasks at concurrency 4 (BERTH_CONCURRENCY=4) with a warm pool of 4, time until all are
// archived, against `seq 40 | xargs -P4 -I{} docker run --rm …` (one fresh workspace per container, like berth).
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import type { TaskView } from "../src/contract/types.js";
import {
  describePhases,
  dockerRunArgs,
  fmtNum,
  interleave,
  mean,
  median,
  ms,
  nowMs,
  row,
  runnerDir,
  shq,
  sum,
  submitTask,
  taskPhases,
  waitArchived,
  type BenchContext,
  type FigureResult,
  type InProcessBerth,
  type Phase,
} from "./lib.js";
import { poolFull } from "./latency.js";

const TASKS = 40;
const PARALLEL = 4;

export async function throughputBench(ctx: BenchContext, berth: InProcessBerth, poolSize: number): Promise<FigureResult> {
  ctx.log(`figure 2: ${TASKS} trivial tasks at concurrency ${PARALLEL}, warm pool of ${poolSize}, ${ctx.reps.other} runs each`);
  const batches: { wallMs: number; views: TaskView[]; phases: Record<Phase, number>[]; firstPost: number }[] = [];
  let n = 0;

  const claims: { hits: number; waited: number; misses: number }[] = [];
  const berthRun = async (): Promise<number> => {
    const batch = `${ctx.runId}-${n++}`;
    await poolFull(berth, poolSize);
    const before = berth.warmPool();
    const t0 = performance.now();
    const firstPost = nowMs();
    const submitted = await Promise.all(
      Array.from({ length: TASKS }, () => submitTask(berth.url, { command: ["true"], labels: { bench: batch } })),
    );
    // One long poll per task (`?waitSeconds`), as a client of the API would wait: each answers when its task ends.
    const seenAt = new Map<string, number>();
    const views = await Promise.all(
      submitted.map(async (s) => {
        const v = await waitArchived(berth.url, s.id, undefined, 600_000);
        seenAt.set(v.id, nowMs());
        return v;
      }),
    );
    const wallMs = performance.now() - t0;
    const after = berth.warmPool();
    claims.push({
      hits: (after?.hits ?? 0) - (before?.hits ?? 0),
      waited: (after?.waited ?? 0) - (before?.waited ?? 0),
      misses: (after?.misses ?? 0) - (before?.misses ?? 0),
    });
    const postAt = new Map(submitted.map((v) => [v.id, ms(v.createdAt)]));
    // POST times per task are not kept apart (all 40 are sent at once): "api" is measured from the first POST.
    const phases = views.map((v) => taskPhases(v, berth.times.get(v.id), postAt.has(v.id) ? firstPost : NaN, seenAt.get(v.id) ?? NaN));
    batches.push({ wallMs, views, phases, firstPost });
    return wallMs;
  };

  const xargsRun = async (): Promise<number> => {
    const base = path.join(ctx.root, "throughput-baseline", `batch-${n++}`);
    await mkdir(base, { recursive: true });
    for (let i = 1; i <= TASKS; i++) await runnerDir(path.join(base, `ws-${i}`));
    const args = dockerRunArgs(`${base}/ws-{}`, ["true"], ctx.runId).map(shq).join(" ");
    const t0 = performance.now();
    await execa("sh", ["-c", `seq ${TASKS} | xargs -P${PARALLEL} -I{} docker ${args}`], { cancelSignal: ctx.signal });
    return performance.now() - t0;
  };

  const [b, x] = await interleave(ctx.reps.other, [berthRun, xargsRun], {
    signal: ctx.signal,
    log: ctx.log,
    names: ["berth", "xargs docker run"],
  });
  const berthMs = b ?? [];
  const xargsMs = x ?? [];

  // How busy the 4 worker slots were: time each task held a slot (startedAt → finishedAt), summed, over 4 × wall.
  const all = batches.flatMap((bt) => bt.phases);
  const slotMs = batches.map((bt) => sum(bt.views.map((v) => ms(v.finishedAt) - ms(v.startedAt))));
  const utilisation = batches.map((bt, i) => (slotMs[i] as number) / (PARALLEL * bt.wallMs));
  const perTaskSlot = batches.flatMap((bt) => bt.views.map((v) => ms(v.finishedAt) - ms(v.startedAt)));
  const lastFinished = batches.map((bt) => Math.max(...bt.views.map((v) => ms(v.finishedAt))) - bt.firstPost);
  const firstStarted = batches.map((bt) => Math.min(...bt.views.map((v) => ms(v.startedAt))) - bt.firstPost);
  return {
    rows: [
      row(
        `2. ${TASKS} \`true\` tasks, concurrency ${PARALLEL}, warm pool of ${poolSize}: until all archived`,
        "s",
        berthMs,
        xargsMs,
        `\`seq ${TASKS} | xargs -P${PARALLEL} docker run --rm\``,
      ),
    ],
    details: [
      `Figure 2 — berth ${fmtNum(median(berthMs) / 1000, 2)} s vs xargs ${fmtNum(median(xargsMs) / 1000, 2)} s; per task: berth ${fmtNum(median(berthMs) / TASKS, 0)} ms of wall time, xargs ${fmtNum(median(xargsMs) / TASKS, 0)} ms.`,
      `  First task started ${fmtNum(median(firstStarted))} ms after the first POST; the last finished at ${fmtNum(median(lastFinished))} ms; the bench saw it all at ${fmtNum(median(berthMs))} ms.`,
      `  Warm claims per batch of ${TASKS} (median): ${fmtNum(median(claims.map((c) => c.hits)))} ready, ${fmtNum(median(claims.map((c) => c.waited)))} still starting when claimed, ${fmtNum(median(claims.map((c) => c.misses)))} cold.`,
      `  A task holds a worker slot (startedAt → finishedAt) for ${fmtNum(median(perTaskSlot))} ms median; the ${PARALLEL} slots were busy ${fmtNum(100 * mean(utilisation))}% of the wall time.`,
      "  Median per phase over all tasks (queue includes waiting for a free slot; api is from the first of the 40 POSTs):",
      ...describePhases(all),
    ],
  };
}
