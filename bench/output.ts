// Figure 3: a task printing 50 MB to stdout, followed over SSE until `end` with every byte received, and as raw
// bytes (`?follow=true`, Docker's framing) until the response ends and the final status is read, against
// `docker run … | wc -c`. berth runs as its own `serve` process here, so the bench's SSE parsing
// does not share the server's event loop (the baseline's `wc` is a process of its own too).
import path from "node:path";
import { execa } from "execa";
import type { TaskView } from "../src/contract/types.js";
import {
  dockerRunArgs,
  fmtNum,
  followRaw,
  followSse,
  getJson,
  interleave,
  median,
  ms,
  nowMs,
  procCpuMs,
  procMemory,
  redisCpuMs,
  row,
  runnerDir,
  shq,
  startServe,
  submitTask,
  type BenchContext,
  type FigureResult,
  type Row,
} from "./lib.js";

const BYTES = 50_000_000;
const SCRIPT = `head -c ${BYTES} /dev/zero | tr '\\0' a`;

export async function outputBench(ctx: BenchContext): Promise<FigureResult> {
  ctx.log(`figure 3: ${BYTES / 1e6} MB of stdout over SSE and with ?follow=true, ${ctx.reps.other} runs each`);
  const serve = await startServe(ctx, "output", { BERTH_MAX_OUTPUT_BYTES: String(2 * BYTES), BERTH_CONCURRENCY: "2" });
  const runs: {
    total: number;
    view: TaskView;
    postAt: number;
    first: number;
    last: number;
    end: number;
    cpuMs: number;
    redisMs: number;
  }[] = [];
  let n = 0;
  const clientCpu: number[] = [];
  const raws: { postAt: number; first: number; last: number; end: number; cpuMs: number; clientMs: number }[] = [];
  try {
    const berthRun = async (): Promise<number> => {
      const cpu0 = await procCpuMs(serve.pid);
      const client0 = process.cpuUsage();
      const redis0 = await redisCpuMs();
      const t0 = performance.now();
      const postAt = nowMs();
      const task = await submitTask(serve.url, { command: ["sh", "-c", SCRIPT], labels: { bench: ctx.runId } }, serve.taskIds);
      const r = await followSse(serve.url, task.id).done;
      const total = performance.now() - t0;
      const client = process.cpuUsage(client0);
      clientCpu.push((client.user + client.system) / 1000);
      if (r.stdoutBytes !== BYTES || r.end?.status !== "succeeded") {
        throw new Error(`SSE delivered ${r.stdoutBytes} of ${BYTES} stdout bytes, end ${JSON.stringify(r.end)}`);
      }
      const view = await getJson<TaskView>(serve.url, `/v1/tasks/${task.id}`);
      runs.push({
        total,
        view,
        postAt,
        first: r.firstStdoutAt,
        last: r.lastStdoutAt,
        end: r.endAt,
        cpuMs: (await procCpuMs(serve.pid)) - cpu0,
        redisMs: (await redisCpuMs()) - redis0,
      });
      return total;
    };

    // What `berth submit --follow` does: the raw bytes until the response ends, then the final status.
    const rawRun = async (): Promise<number> => {
      const cpu0 = await procCpuMs(serve.pid);
      const client0 = process.cpuUsage();
      const t0 = performance.now();
      const postAt = nowMs();
      const task = await submitTask(serve.url, { command: ["sh", "-c", SCRIPT], labels: { bench: ctx.runId } }, serve.taskIds);
      const r = await followRaw(serve.url, task.id);
      const view = await getJson<TaskView>(serve.url, `/v1/tasks/${task.id}`);
      const total = performance.now() - t0;
      const client = process.cpuUsage(client0);
      if (r.stdoutBytes !== BYTES || !r.ended || view.status !== "succeeded") {
        throw new Error(`?follow=true delivered ${r.stdoutBytes} of ${BYTES} stdout bytes, ended ${r.ended}, status ${view.status}`);
      }
      raws.push({
        postAt,
        first: r.firstStdoutAt,
        last: r.lastStdoutAt,
        end: r.endAt,
        cpuMs: (await procCpuMs(serve.pid)) - cpu0,
        clientMs: (client.user + client.system) / 1000,
      });
      return total;
    };

    const dockerRun = async (): Promise<number> => {
      const ws = await runnerDir(path.join(ctx.root, "output-baseline", `ws-${n++}`));
      const cmd = `docker ${dockerRunArgs(ws, ["sh", "-c", SCRIPT], ctx.runId).map(shq).join(" ")} | wc -c`;
      const t0 = performance.now();
      const r = await execa("sh", ["-c", cmd], { cancelSignal: ctx.signal });
      const elapsed = performance.now() - t0;
      if (Number(r.stdout.trim()) !== BYTES) throw new Error(`docker run | wc -c counted ${r.stdout.trim()} bytes`);
      return elapsed;
    };

    const [b, raw, d] = await interleave(ctx.reps.other, [berthRun, rawRun, dockerRun], {
      warmup: ctx.quick ? 0 : 1,
      signal: ctx.signal,
      log: ctx.log,
      names: ["berth SSE", "berth ?follow=true", "docker run | wc -c"],
    });
    if (!ctx.quick) {
      runs.shift(); // the warm-ups'
      raws.shift();
      clientCpu.shift();
    }
    const mem = await procMemory(serve.pid);
    const berthMs = b ?? [];
    const rawMs = raw ?? [];
    const dockerMs = d ?? [];
    const m = (f: (r: (typeof runs)[number]) => number) => fmtNum(median(runs.map(f)));
    const mr = (f: (r: (typeof raws)[number]) => number) => fmtNum(median(raws.map(f)));
    const rows: Row[] = [
      row(`3. ${BYTES / 1e6} MB stdout: POST → SSE \`end\`, all bytes`, "s", berthMs, dockerMs, "`docker run --rm … | wc -c`"),
      row(`3. same, followed with \`?follow=true\` (raw), then the status`, "s", rawMs, dockerMs, "`docker run --rm … | wc -c`"),
      { figure: "3. server peak RSS (VmHWM) after figure 3", unit: "MB", berth: mem.hwm, baseline: null, baselineIs: "—", runs: 1 },
    ];
    return {
      rows,
      details: [
        `Figure 3 — berth ${fmtNum(median(berthMs) / 1000, 2)} s vs docker run | wc -c ${fmtNum(median(dockerMs) / 1000, 2)} s. Medians, ms after the POST:`,
        `    createdAt ${m((r) => ms(r.view.createdAt) - r.postAt)}, startedAt ${m((r) => ms(r.view.startedAt) - r.postAt)}, first stdout byte at the client ${m((r) => r.first - r.postAt)},`,
        `    last stdout byte at the client ${m((r) => r.last - r.postAt)}, finishedAt (after archive) ${m((r) => ms(r.view.finishedAt) - r.postAt)}, \`end\` event ${m((r) => r.end - r.postAt)}.`,
        `    Client receive rate ${fmtNum(median(runs.map((r) => BYTES / 1e6 / ((r.last - r.first) / 1000))), 1)} MB/s; server CPU ${m((r) => r.cpuMs)} ms per run (user+sys, /proc/<pid>/stat), Redis CPU ${m((r) => r.redisMs)} ms (INFO cpu, shared Redis); the bench's SSE client ${fmtNum(median(clientCpu))} ms; server VmHWM ${fmtNum(mem.hwm / 1e6, 1)} MB, VmRSS now ${fmtNum(mem.rss / 1e6, 1)} MB.`,
        `    ?follow=true: berth ${fmtNum(median(rawMs) / 1000, 2)} s; first stdout byte ${mr((r) => r.first - r.postAt)} ms after the POST, last ${mr((r) => r.last - r.postAt)} ms, response end ${mr((r) => r.end - r.postAt)} ms; server CPU ${mr((r) => r.cpuMs)} ms per run, the bench's raw client ${mr((r) => r.clientMs)} ms.`,
        `    Log entries are at most 64 Ki chars, so ${BYTES / 1e6} MB is ≥ ${Math.ceil(BYTES / 65536)} SSE events and Redis stream entries.`,
      ],
    };
  } finally {
    await serve.close();
  }
}
