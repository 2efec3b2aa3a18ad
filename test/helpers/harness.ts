// A real berth (API + worker) on the real Docker engine and Redis, isolated by a namespace per test file.
import { randomUUID } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { execa } from "execa";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { pino } from "pino";
import { buildServer } from "../../src/api/server.js";
import { TaskWaiter } from "../../src/api/task-waiter.js";
import type { Deps } from "../../src/app/deps.js";
import { createServices, type Services } from "../../src/app/services.js";
import { loadConfig } from "../../src/config/config.js";
import type { TaskView } from "../../src/contract/types.js";
import { createRootLogger } from "../../src/logging/logger.js";
import { buildDeps } from "../../src/app/build-deps.js";
import { startSubmitWorker, type SubmitWorker } from "../../src/queue/submit-worker.js";
import { startWebhookWorker, type WebhookWorker } from "../../src/queue/webhook-worker.js";
import { startWorker, type TaskWorker } from "../../src/queue/worker.js";
import { LABEL_NAMESPACE, LABEL_POOL, taskIdOf } from "../../src/runner/labels.js";
import { unlinkNamespaceKeys } from "./sweep.js";
import { waitFor } from "./wait-for.js";

export interface Harness {
  readonly deps: Deps;
  readonly services: Services;
  readonly app: FastifyInstance;
  readonly worker: TaskWorker | null;
  /** The server's long-poll waiter (to see which polls are open). */
  readonly waiter: TaskWaiter;
  readonly root: string;
  readonly namespace: string;
  /** Base URL of the listening server (for SSE, range and CLI tests). */
  readonly url: string;
  /** A real HTTP request to the listening server (light-my-request cannot load under jest's ESM mode). */
  request(method: "GET" | "POST" | "DELETE", urlPath: string, body?: unknown, headers?: Record<string, string>): Promise<HttpResult>;
  submit(body: unknown, headers?: Record<string, string>): Promise<TaskView>;
  get(id: string, headers?: Record<string, string>): Promise<TaskView>;
  waitFinished(id: string, timeoutMs?: number, headers?: Record<string, string>): Promise<TaskView>;
  /** Waits until no job is queued or running, then returns the ids of this namespace's containers left on the engine. */
  leftoverContainers(): Promise<string[]>;
  /** Ids of containers of this namespace still on the engine (the warm pool's unclaimed ones too). */
  containers(): Promise<string[]>;
  /** Containers of one task still on the engine (by its label, or by name: a warm container is named when claimed). */
  taskContainers(id: string): Promise<{ id: string; name: string }[]>;
  /** Whether the worker keeps a warm pool (BERTH_WARM_POOL above 0). */
  readonly warm: boolean;
  close(): Promise<void>;
}

export const FINISHED = (t: { status: string }) => !["queued", "running"].includes(t.status);

/**
 * The warm pool of harnesses whose test does not set one: BERTH_WARM_POOL=BERTH_TEST_WARM_POOL, else 0 (every task
 * cold). A file that runs another file's tests with a warm pool calls {@link useWarmPool} before importing it.
 */
let warmPoolEnv: Record<string, string> = { BERTH_WARM_POOL: process.env.BERTH_TEST_WARM_POOL ?? "0" };
export const useWarmPool = (env: Record<string, string>): void => {
  warmPoolEnv = { BERTH_WARM_POOL: "0", ...env };
};

const openHarnesses = new Set<Harness>();
/** Tasks that started in a warm container, and those that fit a profile but started cold, in all harnesses open now. */
export const warmStarts = (): { warm: number; missed: number } =>
  [...openHarnesses].reduce(
    (n, h) => {
      const s = h.worker?.warmPoolStats();
      return s ? { warm: n.warm + s.hits + s.waited, missed: n.missed + s.misses } : n;
    },
    { warm: 0, missed: 0 },
  );

export async function startHarness(
  env: Record<string, string> = {},
  opts: {
    worker?: boolean;
    logStream?: NodeJS.WritableStream;
    /** How often open long polls re-read their task anyway (TaskWaiterOptions.recheckMs); default the server's. */
    waitRecheckMs?: number;
  } = {},
): Promise<Harness> {
  const namespace = `berth-test-${randomUUID().slice(0, 8)}`;
  const root = await mkdtemp(path.join(tmpdir(), `${namespace}-`));
  const config = loadConfig({
    BERTH_REDIS_URL: process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379",
    BERTH_WORKSPACE_DIR: `${root}/workspaces`,
    BERTH_ARCHIVE_DIR: `${root}/archives`,
    BERTH_CACHE_DIR: `${root}/caches`,
    BERTH_PORT: "0",
    BERTH_STOP_GRACE_SECONDS: "2",
    ...warmPoolEnv,
    ...env,
  });
  const logger = opts.logStream
    ? createRootLogger({ level: "debug", role: "serve" }, opts.logStream)
    : pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  const deps = await buildDeps(config, logger, namespace);
  const services = createServices(deps);
  const worker = opts.worker === false ? null : await startWorker(deps, services.keys, services.store, services.logs, services.endings);
  // What `berth worker` runs beside the task worker: webhook deliveries and the BullMQ submit queue.
  const helpers: (WebhookWorker | SubmitWorker)[] =
    opts.worker === false ? [] : [await startWebhookWorker(deps, services.keys, services.store), await startSubmitWorker(deps, services)];
  const waiter = new TaskWaiter(config.redisUrl, services.keys.finishedChannel, logger, { recheckMs: opts.waitRecheckMs });
  const app = await buildServer(deps, services, { waiter });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  const url = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

  const inject = (method: "GET" | "POST" | "DELETE", urlPath: string, body?: unknown, headers: Record<string, string> = {}) =>
    httpRequest(url, method, urlPath, body, headers);
  const h: Harness = {
    deps,
    services,
    app,
    worker,
    waiter,
    root,
    namespace,
    url,
    warm: config.warmPool.profiles.length > 0,
    request: inject,
    async submit(body, headers = {}) {
      const res = await inject("POST", "/v1/tasks", body, headers);
      if (res.statusCode !== 202 && res.statusCode !== 200) throw new Error(`submit answered ${res.statusCode}: ${res.body}`);
      return res.json() as TaskView;
    },
    async get(id, headers = {}) {
      const res = await inject("GET", `/v1/tasks/${id}`, undefined, headers);
      if (res.statusCode !== 200) throw new Error(`GET task answered ${res.statusCode}: ${res.body}`);
      return res.json() as TaskView;
    },
    waitFinished(id, timeoutMs = 60_000, headers = {}) {
      return waitFor(`task ${id} to finish`, () => h.get(id, headers), FINISHED, { timeoutMs });
    },
    async leftoverContainers() {
      await waitFor(
        "the queue to drain",
        () => services.queue.counts(),
        (c) => (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0,
        { timeoutMs: 120_000 },
      );
      // The warm pool's unclaimed containers are the worker's, not any task's; they go when it closes.
      const all = await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: namespace });
      return all.filter((c) => !(c.labels[LABEL_POOL] && taskIdOf(namespace, c) === "")).map((c) => c.id);
    },
    async containers() {
      return (await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: namespace })).map((c) => c.id);
    },
    async taskContainers(id) {
      const all = await deps.runtime.findByLabels({ [LABEL_NAMESPACE]: namespace });
      return all.filter((c) => taskIdOf(namespace, c) === id).map((c) => ({ id: c.id, name: c.name }));
    },
    async close() {
      openHarnesses.delete(h);
      await app.close();
      await worker?.close();
      for (const w of helpers) await w.close();
      // Sweep first, so a test that died half-way still leaves nothing running on the shared engine.
      for (const id of await h.containers()) await deps.runtime.removeById(id);
      for (const v of await deps.runtime.findVolumes({ [LABEL_NAMESPACE]: namespace })) await deps.runtime.removeVolume(v.name);
      await services.queue.close();
      await unlinkNamespaceKeys(deps.redis, namespace);
      await deps.redis.quit();
      // GNU rm: a task may have left trees deeper than Node's rm can name (ENAMETOOLONG).
      await execa("rm", ["-rf", "--one-file-system", "--", root]);
    },
  };
  openHarnesses.add(h);
  return h;
}

export interface HttpResult {
  readonly statusCode: number;
  readonly headers: Headers;
  readonly body: string;
  readonly raw: Buffer;
  json(): any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export async function httpRequest(
  base: string,
  method: string,
  urlPath: string,
  body?: unknown,
  headers: Record<string, string> = {},
  /** Aborts the request (e.g. `AbortSignal.timeout(ms)`: a deadline for "answers rather than hangs"). */
  signal?: AbortSignal,
): Promise<HttpResult> {
  const init: RequestInit = { method, headers: { ...headers }, signal };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await fetch(`${base}${urlPath}`, init);
  const raw = Buffer.from(await res.arrayBuffer());
  const text = raw.toString("utf8");
  return { statusCode: res.status, headers: res.headers, body: text, raw, json: () => JSON.parse(text) };
}
