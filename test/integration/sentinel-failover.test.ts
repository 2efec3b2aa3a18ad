// Redis Sentinel failovers while tasks run. A master, a replica and three sentinels (scripts/redis-topology) serve
// berth as a separate server process. First the master is SIGKILLed while tasks run and others wait: a sentinel
// promotes the replica and berth carries on there: no task is lost, none runs twice (the engine starts each task's
// container exactly once), and the API answers again within 10 s of the promotion, with 503 meanwhile. Then the
// killed server comes back as a replica and a planned failover (SENTINEL FAILOVER) moves the master back while
// tasks run: the old master stays up, and berth must leave it for the new one.
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
/** The port of the server SIGKILLed by the first test. */
let killedPort = 0;

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

/** Submits until berth answers 202: 503 means "in doubt, retry" (each attempt is a new task; a doubtful one may run too). */
async function submitRetrying(): Promise<string> {
  const res = await waitFor(
    "a submit to be accepted",
    () => httpRequest(server!.url, "POST", "/v1/tasks", TASK),
    (r) => r.statusCode !== 503,
    {
      timeoutMs: 30_000,
      intervalMs: 250,
    },
  );
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

/** Waits until each task has printed "started": its start is recorded and confirmed, its container runs. */
async function waitStarted(ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    await waitFor(
      `task ${id} to print "started"`,
      () => probe(`/v1/tasks/${id}/logs`),
      (r) => r.statusCode === 200 && r.body.includes("started"),
      { timeoutMs: 90_000, intervalMs: 200 },
    );
  }
}

/** Each task ends succeeded with its whole output, its container started exactly once, and none is left. */
async function expectEachRanOnce(ids: readonly string[]): Promise<void> {
  for (const id of ids) {
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
    async () => ids.filter((id) => starts.has(id)).length,
    (n) => n === ids.length,
    {
      timeoutMs: 30_000,
    },
  );
  expect(ids.map((id) => starts.get(id))).toEqual(ids.map(() => 1));
  await waitFor(
    "no container left",
    () => namespaceContainers(server!.namespace),
    (c) => c.length === 0,
    { timeoutMs: 60_000 },
  );
}

/** Polls the API until `stop()`; returns every status it answered (0: no answer within 15 s). */
function pollApi(path: string): { stop(): Promise<number[]> } {
  const seen: number[] = [];
  let polling = true;
  const loop = (async () => {
    while (polling) {
      seen.push((await probe(path)).statusCode);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async stop() {
      polling = false;
      await loop;
      return seen;
    },
  };
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

/** What the sentinel on `port` knows of the replica at `replicaPort`: its flags and link, e.g. "slave ok". */
async function replicaState(replicaPort: number): Promise<string> {
  const sentinel = (topo!.env.REDIS_SENTINEL_PORTS as string).split(",")[0] as string;
  const r = await execa("redis-cli", ["-h", "127.0.0.1", "-p", sentinel, "sentinel", "replicas", topo!.env.REDIS_MASTER_NAME as string], {
    reject: false,
    timeout: 5000,
  });
  const fields = r.stdout.split("\n");
  for (let i = 0; i + 1 < fields.length; i++) {
    if (fields[i] !== "port" || fields[i + 1] !== String(replicaPort)) continue;
    const block = fields.slice(Math.max(0, i - 10), i + 60);
    const value = (key: string) => block[block.indexOf(key) + 1];
    return `${value("flags")} ${value("master-link-status")}`;
  }
  return "unknown";
}

it("survives the master's SIGKILL: tasks finish once each, the API answers again after the promotion", async () => {
  // Three tasks run (the worker's concurrency) and print "started": their start is recorded and confirmed.
  const running = [await submit(), await submit(), await submit()];
  await waitStarted(running);
  // Three more wait in the queue behind them.
  const queued = [await submit(), await submit(), await submit()];

  const oldMaster = await masterPort();
  expect(oldMaster).not.toBeNull();
  killedPort = oldMaster as number;
  process.kill(await topo!.pidOf(killedPort), "SIGKILL");
  // Meanwhile every request gets an answer: the task, or 503 while no master is reachable.
  const poll = pollApi(`/v1/tasks/${running[0]}`);

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
  expect((await poll.stop()).filter((code) => code !== 200 && code !== 503)).toEqual([]);

  // Every task, running or queued at the kill, ends once and succeeds.
  await expectEachRanOnce([...running, ...queued]);
  // The URL's password never reaches a log line.
  expect(server!.output()).not.toContain(topo!.env.REDIS_PASSWORD);
}, 420_000);

it("follows a planned failover back to the restarted server while tasks run", async () => {
  expect(killedPort).not.toBe(0);
  const current = (await masterPort()) as number;
  // The killed server comes back as a replica of the promoted one, and the sentinels see it in sync.
  await topo!.restart(killedPort, ["--replicaof", "127.0.0.1", String(current)]);
  await waitFor(
    "the sentinels to see the restarted server as a replica in sync",
    () => replicaState(killedPort),
    (st) => st === "slave ok",
    {
      timeoutMs: 60_000,
      intervalMs: 250,
    },
  );
  const running = [await submit(), await submit()];
  await waitStarted(running);

  const poll = pollApi(`/v1/tasks/${running[0]}`);
  await execa("redis-cli", [
    "-h",
    "127.0.0.1",
    "-p",
    (topo!.env.REDIS_SENTINEL_PORTS as string).split(",")[0] as string,
    "sentinel",
    "failover",
    topo!.env.REDIS_MASTER_NAME as string,
  ]);
  await waitFor("the sentinels to make the restarted server master", masterPort, (p) => p === killedPort, {
    timeoutMs: 60_000,
    intervalMs: 100,
  });
  // The old master is still up: berth must have left it, so a task submitted now is kept by the new one.
  await waitFor(
    "the API to answer",
    () => probe(`/v1/tasks/${running[1]}`),
    (r) => r.statusCode === 200,
    {
      timeoutMs: 10_000,
      intervalMs: 100,
    },
  );
  // A submit caught by the switch answers 503 (its writes are in doubt); a client retries.
  const after = await submitRetrying();
  expect((await poll.stop()).filter((code) => code !== 200 && code !== 503)).toEqual([]);
  await expectEachRanOnce([...running, after]);
}, 300_000);
