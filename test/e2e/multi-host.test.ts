// Many hosts, one berth (shared/API.md §5 "Many hosts"), as separate processes on this machine: two worker "hosts"
// (`berth worker`, each with its own BERTH_NODE_ID, workspace root and address: 127.0.0.2 and 127.0.0.3, separate
// loopback addresses rather than network namespaces), one `berth api` process that runs nothing, the shared Redis,
// and a real S3-compatible store (Ceph RGW, scripts/s3-rgw). The Docker engine is shared, as one machine has one.
import { createHash, randomUUID } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { pino } from "pino";
import { signRequest } from "../../src/api/peer-auth.js";
import { buildServer } from "../../src/api/server.js";
import { buildDeps } from "../../src/app/build-deps.js";
import { createServices } from "../../src/app/services.js";
import { loadConfig } from "../../src/config/config.js";
import type { TaskView } from "../../src/contract/types.js";
import { type BerthProcess, freePort, spawnBerth } from "../helpers/berth-process.js";
import { httpRequest } from "../helpers/harness.js";
import { startS3, type S3Store } from "../helpers/s3.js";
import { sweepNamespace } from "../helpers/sweep.js";
import { waitFor } from "../helpers/wait-for.js";

const namespace = `berth-test-${randomUUID().slice(0, 8)}`;
const SECRET = randomUUID() + randomUUID();
const HOSTS = { a: { node: "host-a", ip: "127.0.0.2" }, b: { node: "host-b", ip: "127.0.0.3" } } as const;
const FINAL = ["succeeded", "failed", "timed_out", "canceled", "expired"];

let s3: S3Store;
let root: string;
let shared: Record<string, string>;
let api: BerthProcess;
let apiUrl: string;
const workers: Record<"a" | "b", { proc: BerthProcess; url: string; root: string }> = {} as never;

const call = (method: "GET" | "POST" | "DELETE", urlPath: string, body?: unknown, headers: Record<string, string> = {}) =>
  httpRequest(apiUrl, method, urlPath, body, headers);
const view = async (id: string): Promise<TaskView> => (await call("GET", `/v1/tasks/${id}`)).json() as TaskView;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function submit(body: Record<string, unknown>): Promise<TaskView> {
  const res = await call("POST", "/v1/tasks", body);
  if (res.statusCode !== 202) throw new Error(`submit answered ${res.statusCode}: ${res.body}`);
  return res.json() as TaskView;
}

/** Every task of a batch (label batch:<name>) as the API lists it. */
async function batch(name: string): Promise<TaskView[]> {
  const res = await call("GET", `/v1/tasks?label=batch:${name}&limit=500`);
  return res.json().tasks as TaskView[];
}

async function batchDone(name: string, size: number, timeoutMs: number): Promise<TaskView[]> {
  return waitFor(
    `the ${size} tasks of batch ${name} to end`,
    () => batch(name),
    (ts) => ts.length === size && ts.every((t) => FINAL.includes(t.status)),
    { timeoutMs, intervalMs: 500 },
  );
}

/** Runs `fn` over `items`, `limit` at a time. */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function startWorker(key: "a" | "b"): Promise<void> {
  const { node, ip } = HOSTS[key];
  const port = await freePort(ip);
  const dir = path.join(root, node);
  const url = `http://${ip}:${port}`;
  const proc = await spawnBerth("worker", {
    ...shared,
    BERTH_NODE_ID: node,
    BERTH_HOST: ip,
    BERTH_PORT: String(port),
    BERTH_ADVERTISE_URL: url,
    BERTH_WORKSPACE_DIR: `${dir}/workspaces`,
    BERTH_ARCHIVE_DIR: `${dir}/archives`,
    BERTH_CONCURRENCY: "3",
  });
  workers[key] = { proc, url, root: dir };
}

beforeAll(async () => {
  s3 = await startS3();
  root = await mkdtemp(path.join(tmpdir(), `${namespace}-`));
  const b = await s3.bucket("archives");
  shared = {
    ...b.env,
    BERTH_REDIS_URL: process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379",
    BERTH_NAMESPACE: namespace,
    BERTH_CLUSTER_SECRET: SECRET,
    BERTH_STOP_GRACE_SECONDS: "2",
    BERTH_RATE_LIMIT_PER_MINUTE: "0",
    BERTH_TENANT_MAX_ACTIVE: "1000",
    LOG_LEVEL: "info",
  };
  await Promise.all([startWorker("a"), startWorker("b")]);
  const port = await freePort();
  api = await spawnBerth("api", {
    ...shared,
    BERTH_NODE_ID: "api-host",
    BERTH_PORT: String(port),
    BERTH_WORKSPACE_DIR: `${root}/api/workspaces`,
    BERTH_ARCHIVE_DIR: `${root}/api/archives`,
  });
  apiUrl = `http://127.0.0.1:${port}`;
}, 300_000);

afterAll(async () => {
  for (const p of [api, workers.a?.proc, workers.b?.proc]) await p?.stop().catch(() => undefined);
  await sweepNamespace(namespace);
  await s3?.stop();
  // A SIGKILLed worker leaves its workspace root mounted nosuid,nodev (src/workspace/mount.ts), and the same host
  // started again finds it so and does not own the mount.
  for (const w of [workers.a, workers.b]) if (w) await execa("umount", ["-l", "--", `${w.root}/workspaces`], { reject: false });
  if (root) await execa("rm", ["-rf", "--one-file-system", root]);
}, 120_000);

describe("two worker hosts and an API process that runs nothing", () => {
  it("spreads 200 tasks over both hosts; the API serves every archive (checked against its sha256) and every finished task's files", async () => {
    const submitted: TaskView[] = [];
    await eachLimit(
      Array.from({ length: 200 }, (_, i) => i),
      20,
      async (i) => {
        const script = `mkdir -p d && echo task-${i} > d/out.txt && head -c ${1000 + i} /dev/urandom > r.bin`;
        submitted.push(await submit({ command: ["sh", "-c", script], labels: { batch: "spread", i: String(i) } }));
      },
    );
    // The API process runs no task: it needs Redis and the store, not a Docker engine.
    expect((await call("GET", "/readyz")).json()).toMatchObject({
      status: "ready",
      redis: "ok",
      docker: "not checked",
      archiveStore: "ok",
    });
    const done = await batchDone("spread", 200, 240_000);
    expect(done.filter((t) => t.status !== "succeeded")).toEqual([]);
    const perHost = new Map<string, number>();
    for (const t of done) perHost.set(t.host ?? "none", (perHost.get(t.host ?? "none") ?? 0) + 1);
    expect([...perHost.keys()].sort()).toEqual(["host-a", "host-b"]);

    await eachLimit(done, 10, async (t) => {
      const i = Number(t.labels.i);
      const archive = await call("GET", `/v1/tasks/${t.id}/archive`);
      expect([t.id, archive.statusCode]).toEqual([t.id, 200]);
      expect(sha(archive.raw)).toBe(t.archive?.sha256);
      expect(archive.raw.length).toBe(t.archive?.bytes);
      expect(archive.headers.get("etag")).toBe(`"${t.archive?.sha256}"`);
      const files = await call("GET", `/v1/tasks/${t.id}/files`);
      expect(files.json().files).toEqual([
        { path: "d", type: "dir", size: 0 },
        { path: "d/out.txt", type: "file", size: `task-${i}\n`.length },
        { path: "r.bin", type: "file", size: 1000 + i },
      ]);
      expect((await call("GET", `/v1/tasks/${t.id}/files/d/out.txt`)).body).toBe(`task-${i}\n`);
    });
  }, 420_000);

  it("serves a running task's files from the host that runs it; that host refuses unsigned requests; without the secret an API answers 409", async () => {
    const t = await submit({ command: ["sh", "-c", "echo live > live.txt; touch ready; sleep 600"], labels: { batch: "live" } });
    await waitFor(
      "the task to run and write its files",
      () => call("GET", `/v1/tasks/${t.id}/files`),
      (r) => r.statusCode === 200 && (r.json().files as { path: string }[]).some((f) => f.path === "ready"),
      { timeoutMs: 60_000 },
    );
    const running = await view(t.id);
    expect(running.status).toBe("running");
    const host = running.host as string;
    expect(["host-a", "host-b"]).toContain(host);
    const file = await call("GET", `/v1/tasks/${t.id}/files/live.txt`);
    expect([file.statusCode, file.body, file.headers.get("content-length")]).toEqual([200, "live\n", "5"]);
    expect((await call("GET", `/v1/tasks/${t.id}/files/nope.txt`)).json().error.code).toBe("not_found");

    const owner = host === "host-a" ? workers.a : workers.b;
    const peerPath = `/internal/v1/workspaces/${t.workspace}/files`;
    expect((await httpRequest(owner.url, "GET", peerPath)).statusCode).toBe(401);
    const forged = { "x-berth-signature": signRequest("not-the-cluster-secret-xxxxxxxxxxxxxx", "GET", peerPath) };
    expect((await httpRequest(owner.url, "GET", peerPath, undefined, forged)).statusCode).toBe(401);
    const signed = { "x-berth-signature": signRequest(SECRET, "GET", peerPath) };
    expect((await httpRequest(owner.url, "GET", peerPath, undefined, signed)).statusCode).toBe(200);

    // An API process of the same deployment that was not given the secret cannot ask the host.
    const config = loadConfig({
      ...shared,
      BERTH_CLUSTER_SECRET: "",
      BERTH_NODE_ID: "api-no-secret",
      BERTH_PORT: "0",
      BERTH_WORKSPACE_DIR: `${root}/api2/workspaces`,
      BERTH_ARCHIVE_DIR: `${root}/api2/archives`,
    });
    const deps = await buildDeps(config, pino({ level: "silent" }), namespace);
    const services = createServices(deps);
    const app = await buildServer(deps, services);
    try {
      await app.listen({ host: "127.0.0.1", port: 0 });
      const addr = app.server.address();
      const other = `http://127.0.0.1:${typeof addr === "object" && addr ? addr.port : 0}`;
      const res = await httpRequest(other, "GET", `/v1/tasks/${t.id}/files`);
      expect(res.statusCode).toBe(409);
      expect(res.json().error).toMatchObject({ code: "task_on_other_host" });
      expect(res.json().error.message).toContain(`runs on host "${host}"`);
    } finally {
      await app.close();
      await services.queue.close();
      await deps.close();
    }

    expect((await call("POST", `/v1/tasks/${t.id}/cancel`)).statusCode).toBe(202);
    const ended = await waitFor(
      "the task to end",
      () => view(t.id),
      (v) => FINAL.includes(v.status),
      { timeoutMs: 60_000 },
    );
    expect(ended.status).toBe("canceled");
    // Finished: now read out of its archive, whichever host ran it.
    expect((await call("GET", `/v1/tasks/${t.id}/files/live.txt`)).body).toBe("live\n");
  }, 180_000);

  it("a worker host SIGKILLed mid-run: its tasks end failed/worker_lost, the other host goes on, nothing else is lost, and no container of it is left", async () => {
    const sleepers = await Promise.all(Array.from({ length: 6 }, () => submit({ command: ["sleep", "600"], labels: { batch: "kill" } })));
    const running = await waitFor(
      "six tasks to run, three on each host",
      () => batch("kill"),
      (ts) => ts.filter((t) => t.status === "running").length === 6,
      { timeoutMs: 90_000 },
    );
    const onA = running.filter((t) => t.host === "host-a").map((t) => t.id);
    const onB = running.filter((t) => t.host === "host-b").map((t) => t.id);
    expect([onA.length, onB.length]).toEqual([3, 3]);

    await workers.a.proc.stop("SIGKILL");
    // Host B's own tasks are canceled, so it has room for what host A left, and for more work.
    for (const id of onB) expect((await call("POST", `/v1/tasks/${id}/cancel`)).statusCode).toBe(202);
    const after = await Promise.all(
      Array.from({ length: 20 }, (_, i) => submit({ command: ["sh", "-c", `echo after-${i} > a.txt`], labels: { batch: "after" } })),
    );
    const done = await batchDone("after", 20, 180_000);
    expect(done.map((t) => [t.status, t.host])).toEqual(after.map(() => ["succeeded", "host-b"]));

    const ended = await batchDone("kill", 6, 180_000);
    const byId = new Map(ended.map((t) => [t.id, t]));
    for (const id of onA) expect(byId.get(id)).toMatchObject({ status: "failed", reason: "worker_lost", host: "host-a" });
    for (const id of onB) expect(byId.get(id)).toMatchObject({ status: "canceled", host: "host-b" });
    expect(sleepers).toHaveLength(6);

    await workers.a.proc.restart();
    const left = await waitFor(
      "no container of host A to be left",
      async () =>
        (await execa("docker", ["ps", "-aq", "--filter", `label=berth.namespace=${namespace}`, "--filter", "label=berth.host=host-a"]))
          .stdout,
      (out) => out.trim() === "",
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    expect(left).toBe("");
    // Back in service: it takes work again, and nothing of the deployment is left unresolved.
    const more = await Promise.all(Array.from({ length: 10 }, () => submit({ command: ["true"], labels: { batch: "more" } })));
    expect((await batchDone("more", more.length, 120_000)).every((t) => t.status === "succeeded")).toBe(true);
    const all = (await call("GET", "/v1/tasks?limit=500")).json().tasks as TaskView[];
    expect(all.filter((t) => !FINAL.includes(t.status))).toEqual([]);
  }, 420_000);
});
