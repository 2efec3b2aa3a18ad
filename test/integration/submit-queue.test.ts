// Enqueuing through BullMQ itself (API.md §5): another Node process, importing only bullmq (and, for a cluster, its ioredis), adds jobs to the
// `submit` queue and waits for them as BullMQ users do; berth runs them as tasks.
import { execa } from "execa";
import type { AuditEntry, TaskView } from "../../src/contract/types.js";
import { parseRedisUrl } from "../../src/config/redis-url.js";
import { createKeys } from "../../src/store/keys.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { type ServerProcess, spawnServer } from "../helpers/server-process.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME = { authorization: "Bearer acme-key-0001" };
const GLOBEX = { authorization: "Bearer globex-key-0002" };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002",
    BERTH_QUEUE_TENANT: "acme",
    BERTH_TENANT_MAX_ACTIVE: "2",
    BERTH_MAX_BODY_BYTES: "65536",
    BERTH_WEBHOOK_SECRETS: `acme:whsec_${Buffer.alloc(32, 9).toString("base64")}`,
  });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

type Outcome =
  | { ok: true; value: TaskView; event: TaskView | null; state: string }
  | { ok: false; error: string; state: string; attemptsMade: number };

/** The separate process: `node test/bullmq-client.mjs …`, against this test's Redis prefix. */
async function client(...args: string[]): Promise<Record<string, unknown>> {
  const res = await execa("node", ["test/bullmq-client.mjs", ...args], {
    env: { REDIS_URL: process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379", BULL_PREFIX: h.services.keys.bullPrefix },
  });
  return JSON.parse(res.stdout) as Record<string, unknown>;
}
const run = async (jobId: string, data: unknown, opts: unknown = {}) =>
  (await client("run", jobId, JSON.stringify(data), JSON.stringify(opts))) as unknown as Outcome;

describe("a job of the submit queue", () => {
  it("completes with the final task view, which the API shows too, with the job id", async () => {
    const out = await run("job-ok-1", { command: ["sh", "-c", "echo from-bullmq > out.txt"], labels: { via: "bullmq" } });
    if (!out.ok) throw new Error(`job failed: ${out.error}`);
    expect(out.state).toBe("completed");
    expect(out.value).toMatchObject({ status: "succeeded", exitCode: 0, queueJobId: "job-ok-1", labels: { via: "bullmq" } });
    expect(out.value.archive?.sha256).toMatch(/^[0-9a-f]{64}$/);
    // QueueEvents' completed event carries the same view.
    expect(out.event).toEqual(out.value);
    // The task belongs to BERTH_QUEUE_TENANT (acme) and reads the same over HTTP.
    const view = await h.get(out.value.id, ACME);
    expect(view).toEqual(out.value);
    expect((await h.request("GET", `/v1/tasks/${out.value.id}`, undefined, GLOBEX)).statusCode).toBe(404);
    // The tenant's audit trail has the submit, as it has a POST's, with the job for the request.
    const audit = JSON.parse((await h.request("GET", "/v1/audit?since=1h", undefined, ACME)).body) as { entries: AuditEntry[] };
    expect(audit.entries.filter((e) => e.taskId === out.value.id)).toEqual([
      expect.objectContaining({
        action: "submit",
        tenant: "acme",
        outcome: "ok",
        status: 202,
        route: "bullmq:submit",
        requestId: "job:job-ok-1",
      }),
    ]);
  });

  it("completes (not fails) when the task exits non-zero: the view says failed", async () => {
    const out = await run("job-exit-3", { command: ["sh", "-c", "exit 3"] });
    expect(out).toMatchObject({ ok: true, state: "completed", value: { status: "failed", exitCode: 3, queueJobId: "job-exit-3" } });
  });

  it("runs the job for the tenant it names", async () => {
    const out = await run("job-globex", { tenant: "globex", command: ["true"] });
    if (!out.ok) throw new Error(`job failed: ${out.error}`);
    expect((await h.get(out.value.id, GLOBEX)).queueJobId).toBe("job-globex");
    expect((await h.request("GET", `/v1/tasks/${out.value.id}`, undefined, ACME)).statusCode).toBe(404);
  });

  it("waits delayed while its task runs, holding no worker slot, and completes when the task is canceled", async () => {
    const running = run("job-sleeper", { command: ["sleep", "60"] });
    const seen = await waitFor(
      "the job to wait delayed with its task running",
      async () => {
        const s = await client("state", "job-sleeper");
        const taskId = (s.progress as { taskId?: string } | null)?.taskId;
        return { state: s.state, task: taskId ? await h.get(taskId, ACME) : null };
      },
      (x) => x.state === "delayed" && x.task?.status === "running",
      { timeoutMs: 60_000 },
    );
    const task = seen.task as TaskView;
    expect(task.queueJobId).toBe("job-sleeper");
    expect((await h.request("POST", `/v1/tasks/${task.id}/cancel`, undefined, ACME)).statusCode).toBe(202);
    const out = await running;
    expect(out).toMatchObject({ ok: true, state: "completed", value: { id: task.id, status: "canceled", reason: "canceled" } });
  });

  it("is idempotent by job id: a job added again with the same id finds the same task", async () => {
    const first = await run("job-twice", { command: ["true"] });
    const second = await run("job-twice", { command: ["true"] });
    if (!first.ok || !second.ok) throw new Error("a job failed");
    expect(second.value.id).toBe(first.value.id);
    const list = await h.request("GET", "/v1/tasks?limit=500", undefined, ACME);
    expect(list.json().tasks.filter((t: TaskView) => t.queueJobId === "job-twice")).toHaveLength(1);
  });
});

describe("a refused job fails at once with the API's message, and is not retried", () => {
  const cases: [string, unknown, RegExp][] = [
    ["an empty command", { command: [] }, /^Invalid command: must have at least 1 string\.$/],
    ["an unknown field", { command: ["true"], colour: "red" }, /^Unknown field "colour"/],
    [
      "an image outside the allowlist",
      { command: ["true"], image: "alpine:latest" },
      /^Invalid image: "alpine:latest" is not in BERTH_ALLOWED_IMAGES/,
    ],
    ["an unknown tenant", { tenant: "initech", command: ["true"] }, /^Invalid tenant: "initech" is not a tenant of this server/],
    ["a tenant that is not a string", { tenant: 7, command: ["true"] }, /^Invalid tenant: 7 is not a tenant/],
    ["an idempotencyKey other than the job id", { command: ["true"], idempotencyKey: "other" }, /^Invalid idempotencyKey: the job id is/],
    ["data larger than BERTH_MAX_BODY_BYTES", { command: ["true"], files: { "big.txt": "x".repeat(70_000) } }, /BERTH_MAX_BODY_BYTES/],
    [
      "a private webhook target",
      { command: ["true"], webhook: { url: "http://127.0.0.1:1/" } },
      /^Invalid webhook\.url: 127\.0\.0\.1 is a loopback/,
    ],
  ];
  it.each(cases)("%s", async (name, data, message) => {
    const jobId = `refused-${name.replace(/[^a-z]+/gi, "-")}`;
    const out = await run(jobId, data, { attempts: 3, backoff: 10 });
    expect(out).toMatchObject({ ok: false, state: "failed", attemptsMade: 1 });
    expect((out as { error: string }).error).toMatch(message);
  });

  it("over the tenant's limit, like POST /v1/tasks", async () => {
    const sleepers = [await h.submit({ command: ["sleep", "60"] }, GLOBEX), await h.submit({ command: ["sleep", "60"] }, GLOBEX)];
    try {
      const out = await run("refused-over-limit", { tenant: "globex", command: ["true"] }, { attempts: 3 });
      expect(out).toMatchObject({ ok: false, state: "failed", attemptsMade: 1 });
      expect((out as { error: string }).error).toMatch(
        /^You have 2 queued or running tasks, the most BERTH_TENANT_MAX_ACTIVE allows \(2\)/,
      );
    } finally {
      for (const s of sleepers) await h.request("POST", `/v1/tasks/${s.id}/cancel`, undefined, GLOBEX);
      for (const s of sleepers) await h.waitFinished(s.id, 60_000, GLOBEX);
    }
  });
});

describe("across a restart", () => {
  let sp: ServerProcess | undefined;
  afterAll(async () => {
    await sp?.cleanup();
  });

  it("a job whose task ends while berth shuts down completes once berth is back", async () => {
    sp = await spawnServer({ BERTH_SHUTDOWN_TIMEOUT_SECONDS: "1" });
    const server = sp;
    const redisUrl = process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379";
    const env = {
      REDIS_URL: redisUrl,
      BULL_PREFIX: createKeys(server.namespace, { cluster: parseRedisUrl(redisUrl).kind === "cluster" }).bullPrefix,
    };
    const script = (...args: string[]) => execa("node", ["test/bullmq-client.mjs", ...args], { env });
    const waiting = script("run", "job-restart", JSON.stringify({ command: ["sleep", "60"] }));
    await waitFor(
      "the job to wait delayed with its task running",
      async () => {
        const s = JSON.parse((await script("state", "job-restart")).stdout) as { state: string; progress: { taskId?: string } | null };
        const id = s.progress?.taskId;
        const task = id ? ((await (await fetch(`${server.url}/v1/tasks/${id}`)).json()) as TaskView) : null;
        return { state: s.state, status: task?.status };
      },
      (x) => x.state === "delayed" && x.status === "running",
      { timeoutMs: 60_000 },
    );
    // SIGTERM: the submit worker stops first; the task is stopped at the shutdown deadline and its end promotes the
    // job, which waits for a submit worker.
    server.proc.kill("SIGTERM");
    await server.proc;
    expect(JSON.parse((await script("state", "job-restart")).stdout).state).toBe("waiting");
    await server.restart();
    const out = JSON.parse((await waiting).stdout) as Outcome;
    expect(out).toMatchObject({
      ok: true,
      state: "completed",
      value: { status: "failed", reason: "worker_shutdown", queueJobId: "job-restart" },
    });
  });
});
