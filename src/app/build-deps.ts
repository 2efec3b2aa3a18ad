// Deps for one process: connects to Redis, the Docker engine and the archive store, and makes sure the data
// directories exist. Each one that does not answer stops the start with a message naming its setting.
import { mkdir } from "node:fs/promises";
import type { Logger } from "pino";
import { openArchiveStore } from "../archive/open-store.js";
import type { Config } from "../config/config.js";
import { BerthError } from "../errors.js";
import type { ContainerRuntime } from "../runner/container-runtime.js";
import { Metrics } from "../metrics/metrics.js";
import { createDockerClient, DockerRuntime } from "../runner/docker-runtime.js";
import { closeConnection, connectRedis } from "../store/redis.js";
import type { Deps } from "./deps.js";

/** How long the archive store has to answer at start. */
const STORE_CHECK_MS = 10_000;

/**
 * `engine: false` for a process that starts no containers (`berth api`): it needs no Docker engine, and its runtime
 * refuses every call.
 */
export async function buildDeps(
  config: Config,
  logger: Logger,
  namespace = config.namespace,
  opts: { engine?: boolean } = {},
): Promise<Deps & { close(): Promise<void> }> {
  const redis = await connectRedis(config.redisUrl, logger);
  try {
    const runtime = opts.engine === false ? NO_ENGINE : new DockerRuntime(await createDockerClient());
    await mkdir(config.dirs.workspaces, { recursive: true, mode: 0o711 });
    await mkdir(config.dirs.archives, { recursive: true, mode: 0o700 });
    const archives = await openArchiveStore(config);
    try {
      await archives.check(STORE_CHECK_MS);
    } catch (err) {
      archives.close();
      throw err;
    }
    return {
      config,
      logger,
      redis,
      runtime,
      archives,
      namespace,
      host: config.nodeId,
      metrics: new Metrics({ host: config.nodeId, tenantLabel: config.metrics.tenantLabel }),
      close: async () => {
        archives.close();
        await closeConnection(redis);
      },
    };
  } catch (err) {
    await closeConnection(redis);
    throw err;
  }
}

const noEngine = (): never => {
  throw new BerthError("dependency_unavailable", "This process (berth api) has no Docker engine; containers are run by the workers.");
};
const NO_ENGINE: ContainerRuntime = {
  run: noEngine,
  startWaiting: noEngine,
  findByLabels: noEngine,
  removeById: noEngine,
  ping: noEngine,
  ensureVolume: noEngine,
  removeVolume: noEngine,
  findVolumes: noEngine,
};
