// Stalled log readers against berth running as its own process: the server's own memory, measured after full
// garbage collections (test/helpers/memory-probe.js), not this test's. In-process, the figure would mix the server
// with this test's clients and garbage.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TaskView } from "../../src/contract/types.js";
import { httpRequest } from "../helpers/harness.js";
import { held, loopbackQueues, MEMORY_PROBE_NODE_ARGS, type MemoryReport, serverMemory } from "../helpers/server-memory.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";
import { collectSse, endEvents, stalledSse, streamText, type SseEvent } from "../helpers/sse.js";
import { namespaceContainers } from "../helpers/sweep.js";
import { waitFor } from "../helpers/wait-for.js";

const MiB = 1024 * 1024;
let server: ServerProcess;
let dir: string;
let reportFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "berth-stalled-readers-"));
  reportFile = path.join(dir, "memory.json");
  server = await spawnServer(
    { BERTH_MAX_OUTPUT_BYTES: String(64 * MiB), BERTH_RATE_LIMIT_PER_MINUTE: "0", LOG_LEVEL: "warn", MEMORY_PROBE_FILE: reportFile },
    "serve",
    { nodeArgs: MEMORY_PROBE_NODE_ARGS },
  );
}, 120_000);

afterAll(async () => {
  const left = server ? await namespaceContainers(server.namespace) : [];
  await server?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
  expect(left).toEqual([]);
}, 120_000);

const logsUrl = (id: string) => `${server.url}/v1/tasks/${id}/logs`;

async function submit(body: unknown): Promise<TaskView> {
  const res = await httpRequest(server.url, "POST", "/v1/tasks", body);
  if (res.statusCode !== 202) throw new Error(`submit answered ${res.statusCode}: ${res.body}`);
  return res.json() as TaskView;
}

const finished = (id: string, timeoutMs: number) =>
  waitFor(
    `task ${id} to finish`,
    async () => (await httpRequest(server.url, "GET", `/v1/tasks/${id}`)).json() as TaskView,
    (v) => v.status !== "queued" && v.status !== "running",
    { timeoutMs, intervalMs: 500 },
  );

/**
 * The server's memory once nothing moves any more: the kernel's queues on every connection to the server are the
 * same across two looks, and so is the server's retained memory (within 1 MiB).
 */
async function settledMemory(what: string): Promise<MemoryReport> {
  const port = Number(new URL(server.url).port);
  let previous: { queues: string; memory: MemoryReport } | undefined;
  let settled: MemoryReport | undefined;
  await waitFor(
    what,
    async () => {
      const queues = JSON.stringify(await loopbackQueues(port));
      const memory = await serverMemory(server, reportFile);
      const still = previous !== undefined && previous.queues === queues && Math.abs(held(memory) - held(previous.memory)) < MiB;
      if (still && queues === JSON.stringify(await loopbackQueues(port))) settled = memory;
      previous = { queues, memory };
      return { queues, heldMiB: held(memory) / MiB };
    },
    () => settled !== undefined,
    { timeoutMs: 180_000, intervalMs: 500 },
  );
  return settled as MemoryReport;
}

function expectSingleEnd(events: readonly SseEvent[], expected: { status: string; exitCode: number | null }): void {
  const ends = endEvents(events);
  expect(ends).toHaveLength(1);
  expect(events[events.length - 1]?.event).toBe("end");
  expect(JSON.parse(ends[0]?.data ?? "null")).toEqual(expected);
}

it("keeps serving 20 stalled readers without slowing the task or holding its output per reader", async () => {
  // ~20 MB of output. Ten readers attach before the task starts (the live fan-out) and ten after it ended (catching
  // up from the store); none reads anything until the end. The task must not wait for them, and the server must
  // not keep the output for each of them.
  //
  // The bound the design promises for what the server keeps meanwhile, over what it held before:
  //  - the hub's cache of the task's latest entries, shared by all its readers (src/logs/live-hub.ts): at most
  //    RECENT_BYTES = 4 MiB of text, plus the rendered frame of each cached entry (src/api/sse.ts keeps a frame as
  //    long as its entry lives): ≈ 8.5 MiB;
  //  - per stalled reader (src/api/sse.ts): at most MAX_BUFFERED_BYTES = 128 KiB of unsent bytes, plus the frame
  //    that crossed that line (an entry holds at most 64 Ki characters: ~66 KiB of frame for this base64 text); a
  //    reader catching up reads nothing more until its socket has taken what it was sent, so it keeps no batch
  //    while it waits. Asserted with the earlier, looser bound of ≈ 3.1 MiB per reader;
  //  - the Redis client's reply buffer, sized by recent large replies (redis-parser keeps up to ~3 × a 2 MiB
  //    batch): ≈ 6 MiB.
  // What the kernel has taken into the sockets' buffers (~4 MB per connection here) is not the server's memory.
  // For 20 readers: ≈ 8.5 + 6 + 20 × 3.1 ≈ 77 MiB, and every part can be at its bound at once (runs here measured
  // 38 to 68 MiB). Asserted with a quarter more for what V8 and the libraries keep besides (code, pools): 96 MiB.
  // Holding the output per reader would be up to 20 × 20 MB = 400 MB (with unbounded per-reader buffers, whose
  // frames the readers share, this test measured 187 MiB).
  const READERS = 20;
  const DESIGN_BOUND_MIB = 8.5 + 6 + READERS * 3.1;
  const readers: Awaited<ReturnType<typeof stalledSse>>[] = [];
  try {
    // Warm up what a follower uses, so the baseline is the same server after the same code has run.
    const warm = await submit({ command: ["sh", "-c", "head -c 300000 /dev/urandom | base64"] });
    expect(endEvents((await collectSse(logsUrl(warm.id))).events)).toHaveLength(1);
    const baseline = await settledMemory("the idle server's memory to settle");

    const t = await submit({ command: ["sh", "-c", "head -c 15000000 /dev/urandom | base64 > big.txt; cat big.txt"], timeoutSeconds: 120 });
    for (let i = 0; i < READERS / 2; i++) readers.push(await stalledSse(logsUrl(t.id)));
    for (const r of readers) expect(r.status).toBe(200);
    const done = await finished(t.id, 180_000);
    expect(done.status).toBe("succeeded"); // not timed_out: the stalled readers did not hold the task up
    for (let i = 0; i < READERS / 2; i++) readers.push(await stalledSse(logsUrl(t.id)));

    const retained = await settledMemory("the stalled readers' sockets to fill and the server's memory to settle");
    const extraMiB = (held(retained) - held(baseline)) / MiB;
    expect(extraMiB).toBeLessThan(DESIGN_BOUND_MIB * 1.25);

    // Then every reader gets the whole output, byte for byte, and exactly one end event (one at a time, so this
    // test holds one copy of the output at once).
    const expected = await readFile(path.join(server.root, "workspaces", done.workspace, "big.txt"), "utf8");
    expect(expected.length).toBeGreaterThan(20_000_000);
    for (const r of readers) {
      r.resume();
      const res = await r.done;
      const stdout = streamText(res.events, "stdout");
      expect(stdout.length).toBe(expected.length);
      expect(stdout === expected).toBe(true);
      expectSingleEnd(res.events, { status: "succeeded", exitCode: 0 });
    }
  } finally {
    for (const r of readers) r.destroy(); // a failed assertion must not leave connections open
  }
}, 600_000);
