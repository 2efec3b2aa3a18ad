// A `berth worker` whose Redis went away, then SIGTERM: it must still stop its task's container and exit within its
// shutdown bound, log the outage with backoff rather than on every retry, and lose no task (recorded once Redis is back).
// Uses a private redis-server on its own port: the shared Redis on 6379 is never touched.
import { execa, type ResultPromise } from "execa";
import { httpRequest } from "../helpers/harness.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";
import { startPrivateRedis, type PrivateRedis } from "../helpers/private-redis.js";
import { namespaceContainers } from "../helpers/sweep.js";
import { waitFor } from "../helpers/wait-for.js";

const SHUTDOWN_TIMEOUT_SECONDS = 10;
const STOP_GRACE_SECONDS = 2;

let redis: PrivateRedis;
let api: ServerProcess | undefined;
const workers: ResultPromise[] = [];

/** `berth worker` with the API's namespace, directories and Redis; resolves once it has started. */
async function startWorker(env: Record<string, string>) {
  let out = "";
  // No forced kill after SIGTERM (execa's default is SIGKILL 5 s later): the worker must end on its own.
  const proc = execa("node", ["dist/cli/main.js", "worker"], { env, reject: false, all: true, forceKillAfterDelay: false });
  proc.all?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  workers.push(proc);
  await waitFor(
    "the worker to start",
    async () => out,
    (o) => o.includes('"msg":"cleanup scheduled"') || proc.exitCode !== null,
  );
  if (proc.exitCode !== null) throw new Error(`worker exited at start: ${out}`);
  return { proc, output: () => out };
}

beforeAll(async () => {
  redis = await startPrivateRedis();
});

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill("SIGKILL");
  await redis.start(); // for the namespace's keys to be removed
  await api?.cleanup();
  await redis.remove();
});

it("exits within its shutdown bound with Redis gone, removes its container, logs the outage a few times, and loses no task", async () => {
  api = await spawnServer({ BERTH_REDIS_URL: redis.url }, "api");
  const s = api;
  const workerEnv = {
    ...s.env,
    BERTH_SHUTDOWN_TIMEOUT_SECONDS: String(SHUTDOWN_TIMEOUT_SECONDS),
    BERTH_STOP_GRACE_SECONDS: String(STOP_GRACE_SECONDS),
  };
  const worker = await startWorker(workerEnv);
  const submitted = await httpRequest(s.url, "POST", "/v1/tasks", { command: ["sleep", "600"] });
  expect(submitted.statusCode).toBe(202);
  const id = submitted.json().id as string;
  await waitFor(
    "the task to run",
    () => httpRequest(s.url, "GET", `/v1/tasks/${id}`).then((r) => r.json().status),
    (st) => st === "running",
  );
  // "running" is recorded just before the container is created.
  await waitFor(
    "the task's container",
    () => namespaceContainers(s.namespace),
    (c) => c.length === 1,
  );

  await redis.stop();
  const outageFrom = worker.output().length;
  await waitFor(
    "the worker to notice Redis is gone",
    async () => worker.output().slice(outageFrom),
    (o) => o.includes("redis connection error"),
  );
  worker.proc.kill("SIGTERM");
  // The bound is shutdown timeout + grace + time to record + margin (27 s here); the wait is far longer, so a
  // worker that hangs fails here instead of hanging the test.
  const exited = await Promise.race([worker.proc, new Promise<null>((resolve) => setTimeout(resolve, 90_000, null).unref())]);
  expect(exited).not.toBeNull();
  // On failure, the worker's last lines say why.
  expect({ exitCode: exited?.exitCode, last: exited?.exitCode === 0 ? "" : worker.output().slice(-3000) }).toEqual({
    exitCode: 0,
    last: "",
  });
  expect(await namespaceContainers(s.namespace)).toEqual([]);

  const outage = worker.output().slice(outageFrom).split("\n").filter(Boolean);
  // Before backoff: every BullMQ error event was logged, about five lines a second for as long as Redis was away.
  expect(outage.length).toBeLessThan(40);
  // Each of BullMQ's workers (tasks, webhooks, the submit queue) logs its outage once or twice, not per retry.
  const workerErrors = new Map<string, number>();
  for (const l of outage) {
    const msg = /"msg":"([^"]*worker error)"/.exec(l)?.[1];
    if (msg) workerErrors.set(msg, (workerErrors.get(msg) ?? 0) + 1);
  }
  expect(workerErrors.get("worker error")).toBeGreaterThanOrEqual(1);
  expect([...workerErrors.values()].every((n) => n <= 2)).toBe(true);
  expect(worker.output()).toContain("shutdown deadline passed; stopping the task");

  // Once Redis is back, another worker finds the task its predecessor could not record, and records it as lost.
  await redis.start();
  await startWorker(workerEnv);
  const done = await waitFor(
    "the task to be recorded",
    () => httpRequest(s.url, "GET", `/v1/tasks/${id}`).then((r) => (r.statusCode === 200 ? r.json() : { status: `http ${r.statusCode}` })),
    (v) => !["queued", "running"].includes(v.status) && !String(v.status).startsWith("http"),
    { timeoutMs: 150_000, intervalMs: 500 },
  );
  expect(done).toMatchObject({ status: "failed" });
  expect(["worker_lost", "worker_shutdown"]).toContain(done.reason);
  expect(await namespaceContainers(s.namespace)).toEqual([]);
}, 300_000);
