// Figure 1: latency of one trivial task (`true`), from POST until the task view shows the verified archive,
// against `docker run --rm` of the same image with the same flags and a bind-mounted workspace.
import path from "node:path";
import { execa } from "execa";
import {
  describePhases,
  dockerRunArgs,
  fmtNum,
  interleave,
  median,
  nowMs,
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

export async function latencyBench(ctx: BenchContext, berth: InProcessBerth): Promise<FigureResult> {
  ctx.log(`figure 1: one trivial task, ${ctx.reps.latency} runs each (+1 warm-up)`);
  const phases: Record<Phase, number>[] = [];
  let n = 0;

  const berthRun = async (): Promise<number> => {
    const t0 = performance.now();
    const postAt = nowMs();
    const submitted = await submitTask(berth.url, { command: ["true"], labels: { bench: ctx.runId } });
    const view = await waitArchived(berth.url, submitted.id, 10);
    const elapsed = performance.now() - t0;
    phases.push(taskPhases(view, berth.times.get(view.id), postAt, nowMs()));
    return elapsed;
  };

  const dockerRun = async (): Promise<number> => {
    const ws = await runnerDir(path.join(ctx.root, "latency-baseline", `ws-${n++}`));
    const t0 = performance.now();
    await execa("docker", dockerRunArgs(ws, ["true"], ctx.runId), { cancelSignal: ctx.signal });
    return performance.now() - t0;
  };

  const [b, d] = await interleave(ctx.reps.latency, [berthRun, dockerRun], {
    warmup: 1,
    signal: ctx.signal,
    log: ctx.log,
    names: ["berth", "docker run"],
  });
  phases.shift(); // the warm-up's
  const berthMs = b ?? [];
  const dockerMs = d ?? [];
  const over = median(berthMs) - median(dockerMs);
  return {
    rows: [row("1. one `true` task: POST → archived view", "ms", berthMs, dockerMs, "`docker run --rm` same flags")],
    details: [
      `Figure 1 — berth ${fmtNum(median(berthMs))} ms vs docker run ${fmtNum(median(dockerMs))} ms (${over >= 0 ? "+" : ""}${fmtNum(over)} ms).`,
      "  Median per phase over the berth runs (task view timestamps + timed Docker calls in the same process):",
      ...describePhases(phases),
    ],
  };
}
