// The composition root: the only place that picks real implementations and wires the roles together.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { buildServer } from "./api/server.js";
import type { Deps } from "./app/deps.js";
import { Lifecycle } from "./app/lifecycle.js";
import { createServices } from "./app/services.js";
import { startCleanup } from "./cleanup/schedule.js";
import { loadConfig, type Config } from "./config/config.js";
import { BerthError } from "./errors.js";
import { createRootLogger } from "./logging/logger.js";
import { startWorker } from "./queue/worker.js";
import { createDockerClient, DockerRuntime } from "./runner/docker-runtime.js";

export type ServerRole = "serve" | "api" | "worker";

/** Reads `.env` from the working directory (if present) into process.env; variables already set win. */
export function loadDotEnv(): void {
  if (existsSync(".env")) process.loadEnvFile(".env");
}

/** A Redis client that fails fast while Redis is down (the API answers 503 instead of hanging). */
export async function connectRedis(url: string, logger: Logger): Promise<Redis> {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true, connectTimeout: 5000 });
  redis.on("error", (err) => logger.debug({ err }, "redis connection error"));
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    const where = new URL(url);
    throw new BerthError("dependency_unavailable",
      `Redis at ${where.hostname}:${where.port || 6379} (BERTH_REDIS_URL) does not answer; start it, or point BERTH_REDIS_URL at a running Redis.`,
      {}, { cause: err });
  }
  return redis;
}

export async function buildDeps(config: Config, logger: Logger, namespace = config.namespace): Promise<Deps & { close(): Promise<void> }> {
  const redis = await connectRedis(config.redisUrl, logger);
  const docker = await createDockerClient().catch(async (err: unknown) => {
    await redis.quit();
    throw err;
  });
  await mkdir(config.dirs.workspaces, { recursive: true, mode: 0o711 });
  await mkdir(config.dirs.archives, { recursive: true, mode: 0o700 });
  return {
    config,
    logger,
    redis,
    runtime: new DockerRuntime(docker),
    namespace,
    host: hostname(),
    close: async () => void (await redis.quit()),
  };
}

/** Runs one role (or all of them) until SIGTERM/SIGINT; a second signal exits at once. */
export async function runServer(role: ServerRole): Promise<void> {
  loadDotEnv();
  const config = loadConfig(process.env);
  const logger = createRootLogger({ level: config.logLevel, role });
  const lifecycle = new Lifecycle(logger);
  let stopping = false;
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      if (stopping) {
        logger.warn({ signal }, "second signal; exiting now");
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, "shutting down");
      void lifecycle.close().then(() => process.exit(0));
    });
  }

  const deps = await buildDeps(config, logger);
  lifecycle.defer("redis", () => deps.close());
  const services = createServices(deps);
  lifecycle.defer("queue", () => services.queue.close());

  if (role !== "api") {
    const worker = await startWorker(deps, services.keys, services.store, services.logs);
    lifecycle.defer("worker", () => worker.close());
    // Each worker host cleans what lives on its own disk.
    const cleanup = await startCleanup(deps, services);
    lifecycle.defer("cleanup", () => cleanup.close());
  }
  if (role !== "worker") {
    const app = await buildServer(deps, services);
    lifecycle.defer("http", () => app.close());
    await app.listen({ host: config.http.host, port: config.http.port });
    const address = app.server.address();
    const port = typeof address === "object" && address ? address.port : config.http.port;
    const host = config.http.host.includes(":") ? `[${config.http.host}]` : config.http.host;
    logger.info({ url: `http://${host}:${port}` }, "berth is listening");
    process.stdout.write(`berth ${role} listening on http://${host}:${port}\n`);
  }
}
