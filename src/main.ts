// The composition root: the only place that picks real implementations and wires the roles together.
import { buildPeerServer } from "./api/peer-server.js";
import { buildServer } from "./api/server.js";
import { buildDeps } from "./app/build-deps.js";
import { Lifecycle } from "./app/lifecycle.js";
import { createServices } from "./app/services.js";
import { startCleanup, type CleanupScheduler } from "./cleanup/schedule.js";
import { loadConfig, loadDotEnv, quietSdkNotices } from "./config/config.js";
import { createRootLogger } from "./logging/logger.js";
import { buildMetricsServer } from "./api/metrics-server.js";
import { startSubmitWorker } from "./queue/submit-worker.js";
import { startWebhookWorker } from "./queue/webhook-worker.js";
import { shutdownBoundMs, startWorker, type TaskWorker } from "./queue/worker.js";

export type ServerRole = "serve" | "api" | "worker";

/** Runs one role (or all of them) until SIGTERM/SIGINT; a second signal exits at once. */
export async function runServer(role: ServerRole): Promise<void> {
  loadDotEnv();
  quietSdkNotices();
  const config = loadConfig();
  const logger = createRootLogger({ level: config.logLevel, role, format: config.logFormat });
  const lifecycle = new Lifecycle(logger);
  let worker: TaskWorker | undefined;
  let stopping = false;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      if (stopping) {
        logger.warn({ signal }, "second signal; exiting now");
        process.exit(1);
      }
      stopping = true;
      const boundMs = shutdownBoundMs(config);
      logger.info({ signal, exitWithinSeconds: boundMs / 1000 }, "shutting down");
      // The promise of BERTH_SHUTDOWN_TIMEOUT_SECONDS holds whatever a dependency does: past the bound, the
      // containers this process started are removed and it exits.
      const deadline = setTimeout(() => {
        logger.error({ boundSeconds: boundMs / 1000 }, "shutdown overran its bound; removing this worker's containers and exiting");
        void Promise.resolve(worker?.kill()).finally(() => process.exit(1));
      }, boundMs);
      void lifecycle.close().then(() => {
        clearTimeout(deadline);
        process.exit(0);
      });
    });
  }

  // An API-only process starts no containers: it needs Redis and the archive store, not a Docker engine.
  const deps = await buildDeps(config, logger, config.namespace, { engine: role !== "api" });
  lifecycle.defer("redis", () => deps.close());
  const services = createServices(deps);
  lifecycle.defer("queue", () => services.queue.close());

  if (role !== "api") {
    const started = await startWorker(deps, services.keys, services.store, services.logs, services.endings);
    worker = started;
    const webhooks = await startWebhookWorker(deps, services.keys, services.store);
    // Each worker host cleans what lives on its own disk.
    let cleanup: CleanupScheduler | undefined;
    // Closed together, so the shutdown deadline of each counts from the signal, not from the other's end.
    lifecycle.defer("worker", () => Promise.all([started.close(), cleanup?.close(), webhooks.close()]));
    cleanup = await startCleanup(deps, services);
    // Closed first: jobs whose tasks end during the shutdown wait for the next start (submit-worker.ts).
    const submits = await startSubmitWorker(deps, services);
    lifecycle.defer("submit queue", () => submits.close());
  }
  // A worker host that advertises an address answers other hosts' API processes for its workspaces.
  const peer = role !== "api" && config.cluster.advertiseUrl !== null;
  if (role !== "worker" || peer) {
    const app = role === "worker" ? await buildPeerServer(deps) : await buildServer(deps, services, { peer, checkDocker: role !== "api" });
    lifecycle.defer("http", () => app.close());
    await app.listen({ host: config.http.host, port: config.http.port });
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : config.http.port;
    const host = config.http.host.includes(":") ? `[${config.http.host}]` : config.http.host;
    logger.info({ url: `http://${host}:${port}`, node: deps.host, advertised: config.cluster.advertiseUrl }, "berth is listening");
    process.stdout.write(`berth ${role} listening on http://${host}:${port}\n`);
  }
  if (config.metrics.port !== null) {
    // For processes without the API (berth worker), or to keep scrapes off the API's port.
    const metrics = await buildMetricsServer(deps);
    lifecycle.defer("metrics", () => metrics.close());
    await metrics.listen({ host: config.http.host, port: config.metrics.port });
    const host = config.http.host.includes(":") ? `[${config.http.host}]` : config.http.host;
    logger.info({ url: `http://${host}:${config.metrics.port}/metrics` }, "metrics listening");
    process.stdout.write(`berth ${role} metrics listening on http://${host}:${config.metrics.port}/metrics\n`);
  }
}
