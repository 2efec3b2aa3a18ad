// Deps for one process: connects to Redis and the Docker engine and makes sure the data directories exist.
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Config } from "../config/config.js";
import { createDockerClient, DockerRuntime } from "../runner/docker-runtime.js";
import { closeConnection, connectRedis } from "../store/redis.js";
import type { Deps } from "./deps.js";

export async function buildDeps(config: Config, logger: Logger, namespace = config.namespace): Promise<Deps & { close(): Promise<void> }> {
  const redis = await connectRedis(config.redisUrl, logger);
  const docker = await createDockerClient().catch(async (err: unknown) => {
    await closeConnection(redis);
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
    close: () => closeConnection(redis),
  };
}
