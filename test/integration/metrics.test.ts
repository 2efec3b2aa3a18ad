// GET /metrics (API.md §5): a stock Prometheus scrapes berth; after a known run, PromQL tells exactly what ran.
import { startCleanup } from "../../src/cleanup/schedule.js";
import type { TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { type Prometheus, promtoolCheck, startPrometheus } from "../helpers/prometheus.js";
import { freePort, type ServerProcess, spawnServer } from "../helpers/server-process.js";
import { waitFor } from "../helpers/wait-for.js";

const TOKEN = "metrics-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const SUCCEEDED = 3;
const FAILED = 2;
let h: Harness;
let worker: ServerProcess;
let workerPort: number;
let peerPort: number;
let prom: Prometheus;

beforeAll(async () => {
  h = await startHarness({ BERTH_METRICS_TOKEN: TOKEN, BERTH_CONCURRENCY: "2", BERTH_CLEANUP_INTERVAL_SECONDS: "3600" });
  workerPort = await freePort();
  // It serves its metrics on BERTH_METRICS_PORT; one that advertises an address for other hosts, there too.
  peerPort = await freePort();
  worker = await spawnServer(
    {
      BERTH_METRICS_PORT: String(workerPort),
      BERTH_CONCURRENCY: "3",
      BERTH_PORT: String(peerPort),
      BERTH_ADVERTISE_URL: `http://127.0.0.1:${peerPort}`,
      BERTH_CLUSTER_SECRET: "a-cluster-secret-of-at-least-32-characters",
    },
    "worker",
  );
  const target = new URL(h.url).host;
  prom = await startPrometheus([
    { name: "berth", target, token: TOKEN },
    { name: "wrong_token", target, token: "not-the-token-0123456789" },
    { name: "worker", target: `127.0.0.1:${workerPort}` },
  ]);
}, 120_000);

afterAll(async () => {
  await prom?.close();
  await worker?.cleanup();
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

/** A query about the in-process server's series only. */
const q = (metric: string, labels = "") => `sum(${metric}{job="berth"${labels ? `,${labels}` : ""}})`;

describe("scraping", () => {
  it("enforces the metrics token: Prometheus with it scrapes, with another is refused", async () => {
    await prom.until('up{job="berth"}', 1);
    await prom.until('up{job="wrong_token"}', 0);
    const wrong: Record<string, string>[] = [{}, { authorization: "Bearer wrong-token-0123456789" }, { authorization: `Basic ${TOKEN}` }];
    for (const headers of wrong) {
      const res = await h.request("GET", "/metrics", undefined, headers);
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toEqual({ code: "unauthorized", message: expect.stringContaining("BERTH_METRICS_TOKEN") });
    }
    const res = await h.request("GET", "/metrics", undefined, AUTH);
    expect(res.statusCode).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it("names berth's own series as promtool's lint wants them", async () => {
    // prom-client's default nodejs_active_*_total gauges are its own business; berth_* are ours.
    const text = (await h.request("GET", "/metrics", undefined, AUTH)).body;
    const ours = text
      .split("\n")
      .filter((l) => /^(# (HELP|TYPE) )?berth_/.test(l))
      .join("\n");
    expect(ours).toContain("# TYPE berth_tasks_total counter");
    const lint = await promtoolCheck(`${ours}\n`);
    expect(lint.output).toBe("");
    expect(lint.ok).toBe(true);
  });

  it("scrapes a worker without the API on BERTH_METRICS_PORT, no token needed from loopback", async () => {
    await prom.until('up{job="worker"}', 1);
    await prom.until('sum(berth_worker_slots{job="worker",state="total"})', 3);
    await prom.until('sum(berth_worker_slots{job="worker",state="busy"})', 0);
    expect((await fetch(`http://127.0.0.1:${workerPort}/healthz`)).status).toBe(200);
    const advertised = await fetch(`http://127.0.0.1:${peerPort}/metrics`);
    expect(advertised.status).toBe(200);
    expect(await advertised.text()).toMatch(/^berth_worker_slots\{[^}]*state="total"[^}]*\} 3$/m);
    expect((await fetch(`http://127.0.0.1:${workerPort}/v1/tasks`)).status).toBe(404);
  });
});

describe("after a known run", () => {
  const views: TaskView[] = [];

  it("counts tasks by status, and each histogram observed one value per task", async () => {
    const submitted = [
      ...Array.from({ length: SUCCEEDED }, () => h.submit({ command: ["sh", "-c", "printf hello"], ttlSeconds: 1 })),
      ...Array.from({ length: FAILED }, () => h.submit({ command: ["sh", "-c", "printf oops >&2; exit 1"], ttlSeconds: 1 })),
    ];
    const sleeper = await h.submit({ command: ["sleep", "60"], ttlSeconds: 1 });
    const tasks = [...(await Promise.all(submitted)), sleeper];
    await waitFor(
      "the sleeper to run",
      () => h.get(sleeper.id),
      (t) => t.status === "running",
      { timeoutMs: 60_000 },
    );

    // A live log follower counts while it is connected.
    const follower = new AbortController();
    const stream = await fetch(`${h.url}/v1/tasks/${sleeper.id}/logs`, {
      headers: { accept: "text/event-stream" },
      signal: follower.signal,
    });
    expect(stream.status).toBe(200);
    await prom.until(q("berth_sse_followers", 'stream="logs"'), 1);
    follower.abort();
    await prom.until(q("berth_sse_followers", 'stream="logs"'), 0);

    expect((await h.request("POST", `/v1/tasks/${sleeper.id}/cancel`)).statusCode).toBe(202);
    for (const t of tasks) views.push(await h.waitFinished(t.id));
    expect(views.map((v) => v.status).sort()).toEqual(["canceled", "failed", "failed", "succeeded", "succeeded", "succeeded"]);
    const all = SUCCEEDED + FAILED + 1;

    await prom.until(q("berth_tasks_total", 'status="succeeded"'), SUCCEEDED);
    await prom.until(q("berth_tasks_total", 'status="failed"'), FAILED);
    await prom.until(q("berth_tasks_total", 'status="canceled"'), 1);
    await prom.until(q("berth_task_failures_total", 'reason="canceled"'), 1);
    await prom.until(q("berth_task_duration_seconds_count", 'status="succeeded"'), SUCCEEDED);
    await prom.until(q("berth_task_duration_seconds_count"), all);
    await prom.until(q("berth_queue_wait_seconds_count"), all);
    await prom.until(q("berth_container_start_seconds_count"), all);
    await prom.until(q("berth_archive_seconds_count", 'outcome="ok"'), all);
    await prom.until(
      q("berth_archive_bytes_total"),
      views.reduce((n, v) => n + (v.archive?.bytes ?? 0), 0),
    );
    await prom.until(q("berth_log_bytes_total", 'stream="stdout"'), SUCCEEDED * "hello".length);
    await prom.until(q("berth_log_bytes_total", 'stream="stderr"'), FAILED * "oops".length);
    // Nothing is left waiting or running; this process has BERTH_CONCURRENCY slots, none busy.
    await prom.until(q("berth_tasks", 'state="queued"'), 0);
    await prom.until(q("berth_tasks", 'state="running"'), 0);
    await prom.until(q("berth_worker_slots", 'state="total"'), 2);
    await prom.until(q("berth_worker_slots", 'state="busy"'), 0);
    // The process's own metrics, and the host on every series.
    for (const m of ["process_cpu_seconds_total", "process_resident_memory_bytes", "nodejs_heap_size_used_bytes"]) {
      expect(await prom.query(q(m))).toBeGreaterThan(0);
    }
    expect(await prom.query(`count(berth_tasks_total{job="berth",host="${h.deps.host}"})`)).toBe(3);
    // Never a task id in a label.
    const text = (await h.request("GET", "/metrics", undefined, AUTH)).body;
    for (const v of views) expect(text).not.toContain(v.id);
  });

  it("counts what the scheduled cleanup removed and reclaimed, and the disk each kind holds", async () => {
    expect(views).toHaveLength(SUCCEEDED + FAILED + 1);
    const due = Math.max(...views.map((v) => Date.parse(v.expiresAt ?? "")));
    await waitFor(
      "every task to be due for cleanup",
      async () => Date.now(),
      (now) => now > due + 50,
      { timeoutMs: 10_000 },
    );
    const cleanup = await startCleanup(h.deps, h.services);
    try {
      await prom.until(q("berth_cleanup_removed_total", 'reason="ttl"'), views.length, 60_000);
      expect(await prom.query(q("berth_cleanup_reclaimed_bytes_total"))).toBeGreaterThan(0);
      for (const kind of ["workspaces", "archives"]) {
        await waitFor(
          `disk bytes of ${kind}`,
          () => prom.query(q("berth_disk_bytes", `kind="${kind}"`)),
          (v) => v !== null && v >= 0,
        );
      }
    } finally {
      await cleanup.close();
    }
    for (const v of views) expect((await h.get(v.id)).status).toBe("expired");
  });
});
