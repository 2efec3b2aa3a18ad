// Figure 5: RSS of a separate `serve` process while 100 SSE followers watch 10 running tasks (each printing a
// line every 50 ms for ~20 s), sampled from /proc/<pid>/status. The reference is the same process idle, just
// before the load (there is no off-the-shelf tool that fans one container's output out to 100 readers).
import http from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import type { TaskView } from "../src/contract/types.js";
import {
  fmtNum,
  followSse,
  getJson,
  mean,
  median,
  percentile,
  quarterMeans,
  procMemory,
  startServe,
  submitTask,
  type BenchContext,
  type FigureResult,
  type SseResult,
} from "./lib.js";

const TASKS = 10;
const FOLLOWERS_PER_TASK = 10;
const LINES = 400; // one every 50 ms: ~20 s
const SAMPLE_MS = 200;

export async function memoryBench(ctx: BenchContext): Promise<FigureResult> {
  ctx.log(`figure 5: server RSS, ${TASKS * FOLLOWERS_PER_TASK} SSE followers on ${TASKS} tasks for ~${(LINES * 50) / 1000} s (1 run)`);
  const serve = await startServe(ctx, "memory", { BERTH_CONCURRENCY: String(TASKS) });
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    // Idle reference: 2 s of samples after start-up.
    const idle: number[] = [];
    for (let i = 0; i < 10; i++) {
      idle.push((await procMemory(serve.pid)).rss);
      await sleep(SAMPLE_MS);
    }
    // Each line carries the time it was printed (ms), so the followers also measure how late lines reach them.
    const script = `for i in $(seq 1 ${LINES}); do echo "line $i of ${LINES} printed at $(date +%s%3N) by a task that prints one line every 50 ms"; sleep 0.05; done`;
    const tasks = await Promise.all(
      Array.from({ length: TASKS }, () =>
        submitTask(serve.url, { command: ["sh", "-c", script], labels: { bench: ctx.runId } }, serve.taskIds),
      ),
    );
    // Followers join once every task runs, so all 10 are live while the 100 watch.
    for (const deadline = Date.now() + 60_000; ; ) {
      const views = await Promise.all(tasks.map((t) => getJson<TaskView>(serve.url, `/v1/tasks/${t.id}`)));
      if (views.every((v) => v.status === "running")) break;
      if (views.some((v) => v.status !== "queued" && v.status !== "running"))
        throw new Error(`a task ended before the followers joined: ${views.map((v) => v.status).join(",")}`);
      if (Date.now() > deadline) throw new Error("the 10 tasks were not all running within 60 s");
      await sleep(50);
    }
    const delays: number[] = [];
    const onStdout = (text: string, at: number) => {
      for (const m of text.matchAll(/printed at (\d{13}) /g)) delays.push(at - Number(m[1]));
    };
    const followers = tasks.flatMap((t) => Array.from({ length: FOLLOWERS_PER_TASK }, () => followSse(serve.url, t.id, agent, onStdout)));
    const samples: number[] = [];
    let finished = false;
    const all = Promise.all(followers.map((f) => f.done)).finally(() => (finished = true));
    all.catch(() => undefined);
    const t0 = performance.now();
    while (!finished) {
      samples.push((await procMemory(serve.pid)).rss);
      if (performance.now() - t0 > 120_000) throw new Error("followers did not see `end` within 120 s");
      await sleep(SAMPLE_MS);
    }
    const results: SseResult[] = await all;
    const seconds = (performance.now() - t0) / 1000;
    const incomplete = results.filter((r) => r.stdoutLines !== LINES || r.end?.status !== "succeeded");
    if (incomplete.length > 0)
      throw new Error(`${incomplete.length} followers missed lines or the end, e.g. ${JSON.stringify(incomplete[0])}`);
    // 3 s more after the load: does RSS fall back, or stay where the load left it?
    const after: number[] = [];
    for (let i = 0; i < 15; i++) {
      await sleep(SAMPLE_MS);
      after.push((await procMemory(serve.pid)).rss);
    }
    const mem = await procMemory(serve.pid);
    const peak = Math.max(...samples);
    const q = quarterMeans(samples);
    const idleMean = mean(idle);
    const mb = (b: number) => `${fmtNum(b / 1e6, 1)} MB`;
    return {
      rows: [
        {
          figure: "5. server RSS: peak while 100 SSE followers watch 10 tasks",
          unit: "MB",
          berth: peak,
          baseline: idleMean,
          baselineIs: "same server idle, before the load",
          runs: 1,
        },
        {
          figure: "5. server RSS: last-quarter vs first-quarter mean (flatness)",
          unit: "MB",
          berth: q.last,
          baseline: q.first,
          baselineIs: "first-quarter mean of the same run",
          runs: 1,
        },
        {
          figure: "5. line delay p99: printed in the task → parsed by a follower",
          unit: "ms",
          berth: percentile(delays, 0.99),
          baseline: null,
          baselineIs: "— (target ~100 ms)",
          runs: 1,
        },
        { figure: "server peak RSS (VmHWM) after figure 5", unit: "MB", berth: mem.hwm, baseline: null, baselineIs: "—", runs: 1 },
      ],
      details: [
        `Figure 5 — ${samples.length} samples over ${fmtNum(seconds, 1)} s: idle ${mb(idleMean)}, first quarter ${mb(q.first)}, last quarter ${mb(q.last)}, peak ${mb(peak)}, VmHWM ${mb(mem.hwm)}; 3 s after the load ${mb(mean(after))}.`,
        `    Every follower got all ${LINES} lines and \`end\` (${fmtNum(mean(results.map((r) => r.events)))} events each on average, ${TASKS * FOLLOWERS_PER_TASK} followers).`,
        `    Line delay, printed in the container → parsed by a follower: median ${fmtNum(median(delays))} ms, p99 ${fmtNum(percentile(delays, 0.99))} ms, max ${fmtNum(Math.max(...delays))} ms over ${delays.length} lines.`,
      ],
    };
  } finally {
    agent.destroy();
    await serve.close();
  }
}
