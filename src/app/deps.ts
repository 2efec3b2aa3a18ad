// Imports flow one way:
//   cli ─► client ─► contract
//   main ─► api, queue, cleanup ─► runner, workspace, archive, logs, store ─► domain, errors, config, logging
// Only runner/docker-runtime.ts imports dockerode; only queue/* and cleanup/schedule.ts import bullmq;
// only store/keys.ts spells Redis keys; only store/ and logs/log-store.ts issue Redis commands (lint/no-raw-redis.grit);
// only config/config.ts reads configuration variables.
import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import type { ArchiveStore } from "../archive/archive-store.js";
import type { Config } from "../config/config.js";
import type { Metrics } from "../metrics/metrics.js";
import type { ContainerRuntime } from "../runner/container-runtime.js";

/** Everything a role needs, built once in main.ts; tests build their own. */
export interface Deps {
  readonly config: Config;
  readonly logger: Logger;
  /**
   * General-purpose connection (fails fast when Redis is down, so the API can answer 503): one Redis or a
   * Sentinel-managed master (`Redis`), or a Redis Cluster.
   */
  readonly redis: Redis | Cluster;
  readonly runtime: ContainerRuntime;
  /** Where archives are written, read and deleted: this host's BERTH_ARCHIVE_DIR, or an object store all hosts share. */
  readonly archives: ArchiveStore;
  /**
   * Prefix for every Redis key and BullMQ queue, and the value of the `berth.namespace` label on every
   * container. "berth" in production; unique per test file in tests.
   */
  readonly namespace: string;
  /** This host's identity (BERTH_NODE_ID, default the hostname): recorded on tasks it runs, since their workspaces live on its disk. */
  readonly host: string;
  /** This process's Prometheus metrics (GET /metrics). */
  readonly metrics: Metrics;
}
