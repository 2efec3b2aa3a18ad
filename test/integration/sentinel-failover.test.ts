// Redis Sentinel failover while tasks run. A master, a replica and three sentinels (scripts/redis-topology) serve
// berth as a separate server process; the master is SIGKILLed while tasks run and others wait. A sentinel promotes
// the replica and berth carries on there: no task is lost, none runs twice (the engine starts each task's container
// exactly once), and the API answers again within 10 s of the promotion, with 503 meanwhile.
import { execa, type ResultPromise } from "execa";
import type { TaskView } from "../../src/contract/types.js";
import { LABEL_TASK_ID } from "../../src/runner/labels.js";
import { httpRequest } from "../helpers/harness.js";
import { startTopology, type Topology } from "../helpers/redis-topology.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";
import { namespaceContainers } from "../helpers/sweep.js";
import { waitFor } from "../helpers/wait-for.js";

let topo: Topology | undefined;
let server: ServerProcess | undefined;
let events: ResultPromise | undefined;
/** Container starts the engine reported, per task id. */
const starts = new Map<string, number>();

beforeAll(async () => {
  topo = await startTopology("sentinel");
  server = await spawnServer({ BERTH_REDIS_URL: topo.url, BERTH_CONCURRENCY: "3" });
  const ns = server.namespace;
  events = execa("docker", ["events", "--filter", `label=berth.namespace=${ns}`, "--filter", "event=start", "--format", "{{json .}}"], {
    buffer: false,
    reject: false,
  });
  let pending = "";
  events.stdout?.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines.filter(Boolean)) {
      const id = (JSON.parse(line) as { Actor?: { Attributes?: Record<string, string> } }).Actor?.Attributes?.[LABEL_TASK_ID];
      if (id) starts.set(id, (starts.get(id) ?? 0) + 1);
    }
  });
}, 180_000);

afterAll(async () => {
  events?.kill();
  await events?.catch(() => undefined);
  try {
    await server?.cleanup();
  } finally {
    await topo?.stop();
  }
}, 120_000);

const TASK = { command: ["sh", "-c", "echo started; sleep 8; echo finished"] };

async function submit(): Promise<string> {
  const res = await httpRequest(server!.url, "POST", "/v1/tasks", TASK);
  expect(res.statusCode).toBe(202);
  return (res.json() as TaskView).id;
}

/** One API request that cannot hang the test: status 0 when it got no answer at all. */
async function probe(path: string): Promise<{ statusCode: number; body: string }> {
  try {
    const res = await fetch(`${server!.url}${path}`, { signal: AbortSignal.timeout(15_000) });
    return { statusCode: res.status, body: await res.text() };
  } catch (err) {
    return { statusCode: 0, body: String(err) };
  }
}

/** The master's port as the sentinels see it: any sentinel that answers. */
async function masterPort(): Promise<number | null> {
  for (const port of (topo!.env.REDIS_SENTINEL_PORTS as string).split(",")) {
    const r = await execa(
      "redis-cli",
      ["-h", "127.0.0.1", "-p", port, "sentinel", "get-master-addr-by-name", topo!.env.REDIS_MASTER_NAME as string],
      {
        reject: false,
        timeout: 5000,
      },
    );
    const [, p] = r.stdout.split("\n");
    if (r.exitCode === 0 && p) return Number(p);
  }
  return null;
}

it("survives the master's SIGKILL: tasks finish once each, the API answers again after the promotion", async () => {
  const s = server!;
  // Three tasks run (the worker's concurrency) and print "started": their start is recorded and confirmed.
  const running = [await submit(), await submit(), await submit()];
  for (const id of running) {
    await waitFor(
      `task ${id} to print "started"`,
      () => probe(`/v1/tasks/${id}/logs`),
      (r) => r.statusCode === 200 && r.body.includes("started"),
      { timeoutMs: 90_000, intervalMs: 200 },
    );
  }
  // Three more wait in the queue behind them.
  const queued = [await submit(), await submit(), await submit()];
  const all = [...running, ...queued];

  const oldMaster = await masterPort();
  expect(oldMaster).not.toBeNull();
  process.kill(await topo!.pidOf(oldMaster as number), "SIGKILL");

  // Meanwhile every request gets an answer: the task, or 503 while no master is reachable.
  const seen: number[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      seen.push((await probe(`/v1/tasks/${all[0]}`)).statusCode);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  await waitFor("a sentinel to promote the replica", masterPort, (p) => p !== null && p !== oldMaster, {
    timeoutMs: 60_000,
    intervalMs: 100,
  });
  const back = await waitFor(
    "the API to answer again",
    () => probe(`/v1/tasks/${queued[2]}`),
    (r) => r.statusCode === 200,
    {
      timeoutMs: 10_000,
      intervalMs: 100,
    },
  );
  expect(JSON.parse(back.body)).toMatchObject({ id: queued[2] });
  polling = false;
  await poller;
  expect(seen.filter((code) => code !== 200 && code !== 503)).toEqual([]);

  // Every task, running or queued at the kill, ends once and succeeds.
  for (const id of all) {
    const v = await waitFor(
      `task ${id} to finish`,
      async () => JSON.parse((await probe(`/v1/tasks/${id}`)).body) as TaskView,
      (t) => t.status !== "queued" && t.status !== "running",
      { timeoutMs: 180_000, intervalMs: 250 },
    );
    expect(v).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect((await probe(`/v1/tasks/${id}/logs`)).body).toBe("started\nfinished\n");
  }
  await waitFor(
    "the engine's start events",
    async () => all.filter((id) => starts.has(id)).length,
    (n) => n === all.length,
    {
      timeoutMs: 30_000,
    },
  );
  expect(all.map((id) => starts.get(id))).toEqual(all.map(() => 1));
  await waitFor(
    "no container left",
    () => namespaceContainers(s.namespace),
    (ids) => ids.length === 0,
    { timeoutMs: 60_000 },
  );
  // The URL's password never reaches a log line.
  expect(s.output()).not.toContain(topo!.env.REDIS_PASSWORD);
}, 420_000);
