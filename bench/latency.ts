// Figure 1: latency of one trivial task (`true`), from POST until the task view shows the verified archive, with a
// warm pool (a container started ahead is claimed) and on the cold path (the container is created and started for
// the task), against `docker run --rm` of the same image with the same flags and a bind-mounted workspace. Then the
// time from POST to the first byte of output an SSE follower sees, warm.
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import {
  describePhases,
  dockerRunArgs,
  fmtNum,
  followSse,
  interleave,
  median,
  nowMs,
  percentile,
  row,
  runnerDir,
  submitTask,
  taskPhases,
  waitArchived,
  type BenchContext,
  type FigureResult,
  type InProcessBerth,
  type Phase,
} from "./lib.js";

/** Waits until the warm pool has as many containers waiting as it keeps (untimed: the pool's steady state). */
export async function poolFull(berth: InProcessBerth, size: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((berth.warmPool()?.idle ?? 0) < size) {
    if (Date.now() > deadline) throw new Error(`the warm pool did not fill within ${timeoutMs} ms: ${JSON.stringify(berth.warmPool())}`);
    await sleep(20);
  }
}

export async function latencyBench(ctx: BenchContext, warm: InProcessBerth, cold: InProcessBerth, poolSize: number): Promise<FigureResult> {
  ctx.log(`figure 1: one trivial task, warm and cold, ${ctx.reps.latency} runs each (+1 warm-up)`);
  const phases = { warm: [] as Record<Phase, number>[], cold: [] as Record<Phase, number>[] };
  let n = 0;

  const berthRun = (berth: InProcessBerth, into: Record<Phase, number>[]) => async (): Promise<number> => {
    if (berth === warm) await poolFull(warm, poolSize);
    const t0 = performance.now();
    const postAt = nowMs();
    const submitted = await submitTask(berth.url, { command: ["true"], labels: { bench: ctx.runId } });
    const view = await waitArchived(berth.url, submitted.id, 10);
    const elapsed = performance.now() - t0;
    into.push(taskPhases(view, berth.times.get(view.id), postAt, nowMs()));
    // Its replacement is started before the next contender runs, so that one is not slowed by it.
    if (berth === warm) await poolFull(warm, poolSize);
    return elapsed;
  };

  const dockerRun = async (): Promise<number> => {
    const ws = await runnerDir(path.join(ctx.root, "latency-baseline", `ws-${n++}`));
    const t0 = performance.now();
    await execa("docker", dockerRunArgs(ws, ["true"], ctx.runId), { cancelSignal: ctx.signal });
    return performance.now() - t0;
  };

  const before = warm.warmPool();
  const [w, c, d] = await interleave(ctx.reps.latency, [berthRun(warm, phases.warm), berthRun(cold, phases.cold), dockerRun], {
    warmup: 1,
    signal: ctx.signal,
    log: ctx.log,
    names: ["berth warm", "berth cold", "docker run"],
  });
  const after = warm.warmPool();
  phases.warm.shift(); // the warm-up's
  phases.cold.shift();
  const warmMs = w ?? [];
  const coldMs = c ?? [];
  const dockerMs = d ?? [];

  // First byte: a task that prints at once, followed over SSE from right after the POST.
  const samples = ctx.quick ? 10 : 30;
  ctx.log(`figure 1: first byte seen by an SSE follower, warm, ${samples} runs`);
  const firstByte: number[] = [];
  for (let i = 0; i < samples; i++) {
    ctx.signal?.throwIfAborted();
    await poolFull(warm, poolSize);
    const t0 = performance.now();
    const task = await submitTask(warm.url, { command: ["echo", "first"], labels: { bench: ctx.runId } });
    let first = Number.NaN;
    const follower = followSse(warm.url, task.id, undefined, () => {
      if (Number.isNaN(first)) first = performance.now() - t0;
    });
    await follower.done;
    if (Number.isNaN(first)) throw new Error(`the SSE follower of ${task.id} saw no output`);
    firstByte.push(first);
    await waitArchived(warm.url, task.id, 10);
  }

  return {
    rows: [
      row("1. one `true` task: POST → archived view, warm pool", "ms", warmMs, dockerMs, "`docker run --rm` same flags"),
      row("1. same, cold path (no warm container)", "ms", coldMs, dockerMs, "`docker run --rm` same flags"),
      {
        figure: "1. warm: POST → first byte at an SSE follower, p50",
        unit: "ms",
        berth: median(firstByte),
        baseline: null,
        baselineIs: "— (target ≤ 100 ms)",
        runs: firstByte.length,
      },
      {
        figure: "1. warm: POST → first byte at an SSE follower, p99",
        unit: "ms",
        berth: percentile(firstByte, 0.99),
        baseline: null,
        baselineIs: "— (target ≤ 300 ms)",
        runs: firstByte.length,
      },
    ],
    details: [
      `Figure 1 — warm ${fmtNum(median(warmMs))} ms, cold ${fmtNum(median(coldMs))} ms, docker run ${fmtNum(median(dockerMs))} ms; the warm runs found ${fmtNum((after?.hits ?? 0) - (before?.hits ?? 0))} ready containers in ${warmMs.length + 1} runs (the pool refilled between runs, untimed).`,
      "  Median per phase, warm (task view timestamps + timed Docker calls in the same process):",
      ...describePhases(phases.warm),
      "  Median per phase, cold:",
      ...describePhases(phases.cold),
      `  First byte at an SSE follower (warm, \`echo first\`): p50 ${fmtNum(median(firstByte))} ms, p99 ${fmtNum(percentile(firstByte, 0.99))} ms, max ${fmtNum(Math.max(...firstByte))} ms over ${firstByte.length} runs.`,
    ],
  };
}
