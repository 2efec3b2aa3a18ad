// The only module that reads the server's configuration from the environment (and `.env`).
import { existsSync } from "node:fs";
import { homedir, hostname } from "node:os";
import path from "node:path";
import { z } from "zod";
import { BerthError } from "../errors.js";
import { parseRedisUrl, type RedisTarget, RedisUrlError } from "./redis-url.js";
import { parseWarmProfiles, type WarmProfile } from "./warm-pool.js";

const expandHome = (p: string) => path.resolve(p.replace(/^~(?=$|\/)/, homedir()));
const wholeNumber = (min: number, max: number, fallback: number) => {
  const problem = `must be a whole number from ${min} to ${max}`;
  return z.coerce.number(problem).int(problem).min(min, problem).max(max, problem).default(fallback);
};
const seconds = (fallback: number) => wholeNumber(1, 31_536_000, fallback);
// 0.01 is the engine's smallest CPU limit; below it the engine sees no limit at all (NanoCpus 0) or fails at start.
const cpus = (fallback: number) =>
  z.coerce
    .number("must be a number of CPUs")
    .min(0.01, "must be a number of CPUs from 0.01 to 1024")
    .max(1024, "must be a number of CPUs from 0.01 to 1024")
    .default(fallback);
const csv = z
  .string()
  .default("")
  .transform((s) =>
    s
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean),
  );
const bool = (fallback: "true" | "false") =>
  z
    .enum(["true", "false", "1", "0"], "must be true or false")
    .default(fallback)
    .transform((v) => v === "true" || v === "1");

// Names are the public contract (shared/API.md §1); keep them in the order of .env.example.
const Env = z.object({
  BERTH_REDIS_URL: z
    .string()
    .default("redis://127.0.0.1:6379")
    .superRefine((v, ctx) => {
      try {
        parseRedisUrl(v);
      } catch (err) {
        if (!(err instanceof RedisUrlError)) throw err;
        ctx.addIssue({ code: "custom", message: err.message });
      }
    }),
  BERTH_WORKSPACE_DIR: z.string().min(1).default("~/.berth/workspaces").transform(expandHome),
  BERTH_ARCHIVE_DIR: z.string().min(1).default("~/.berth/archives").transform(expandHome),
  BERTH_ARCHIVE_STORE: z
    .string()
    .default("local")
    .refine((v) => v === "local" || S3_URL.test(v), "must be empty (the local BERTH_ARCHIVE_DIR) or s3://bucket/prefix"),
  BERTH_S3_ENDPOINT: z
    .string()
    .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), "must be an http:// or https:// URL")
    .optional(),
  BERTH_S3_REGION: z
    .string()
    .regex(/^[a-z0-9-]{1,64}$/, "must be a region name such as us-east-1")
    .default("us-east-1"),
  BERTH_S3_FORCE_PATH_STYLE: bool("false"),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_SESSION_TOKEN: z.string().optional(),
  BERTH_CACHE_DIR: z.string().min(1).default("~/.berth/caches").transform(expandHome),
  BERTH_CACHE_IDLE_DAYS: wholeNumber(1, 3650, 30),
  BERTH_HOST: z.string().min(1).default("127.0.0.1"),
  BERTH_PORT: wholeNumber(0, 65_535, 8080),
  BERTH_API_KEYS: csv.pipe(
    z.array(z.string().regex(/^[A-Za-z0-9_.-]{1,64}:\S{8,}$/, "each entry must be tenant:key, the key at least 8 characters")),
  ),
  BERTH_ADMIN_KEYS: csv.pipe(z.array(z.string().regex(/^[^\s:,]{16,}$/, "each key must be at least 16 characters, without spaces or ':'"))),
  BERTH_AUDIT_RETENTION_DAYS: wholeNumber(1, 3650, 90),
  BERTH_TENANT_MAX_STORED_BYTES: wholeNumber(0, 2 ** 53, 0),
  BERTH_DEFAULT_IMAGE: z.string().min(1).default("berth-runner:latest"),
  BERTH_ALLOWED_IMAGES: csv,
  BERTH_CONCURRENCY: wholeNumber(1, 256, 2),
  BERTH_TASK_TIMEOUT_SECONDS: seconds(600),
  BERTH_MAX_TASK_TIMEOUT_SECONDS: seconds(3600),
  BERTH_RETENTION_SECONDS: seconds(604_800),
  BERTH_MAX_RETENTION_SECONDS: seconds(2_592_000),
  BERTH_CLEANUP_INTERVAL_SECONDS: seconds(600),
  BERTH_MAX_OUTPUT_BYTES: wholeNumber(0, 2 ** 40, 10_485_760),
  BERTH_TENANT_MAX_ACTIVE: wholeNumber(1, 1_000_000, 100),
  BERTH_ALLOW_NETWORK: bool("false"),
  BERTH_RUNNER_USER: z
    .string()
    .regex(/^\d+:\d+$/, "must be uid:gid, e.g. 1000:1000")
    .default("1000:1000")
    .refine((v) => !v.startsWith("0:"), "must not be root (uid 0)"),
  BERTH_DEFAULT_MEMORY_MB: wholeNumber(16, 1_048_576, 512),
  BERTH_MAX_MEMORY_MB: wholeNumber(16, 1_048_576, 4096),
  BERTH_DEFAULT_CPUS: cpus(1),
  BERTH_MAX_CPUS: cpus(2),
  BERTH_DEFAULT_PIDS: wholeNumber(8, 100_000, 256),
  BERTH_MAX_PIDS: wholeNumber(8, 100_000, 1024),
  BERTH_DEFAULT_DISK_MB: wholeNumber(1, 16_777_216, 1024),
  BERTH_MAX_DISK_MB: wholeNumber(1, 16_777_216, 8192),
  BERTH_TMPFS_MB: wholeNumber(1, 1_048_576, 256),
  BERTH_STOP_GRACE_SECONDS: wholeNumber(0, 600, 10),
  BERTH_ARCHIVE_TIMEOUT_SECONDS: seconds(600),
  BERTH_SHUTDOWN_TIMEOUT_SECONDS: wholeNumber(1, 3600, 30),
  BERTH_MAX_BODY_BYTES: wholeNumber(1024, 1_073_741_824, 16_777_216),
  BERTH_REQUEST_TIMEOUT_SECONDS: wholeNumber(1, 3600, 30),
  BERTH_MAX_CONNECTIONS: wholeNumber(1, 1_000_000, 4000),
  BERTH_MAX_CONNECTIONS_PER_ADDRESS: wholeNumber(1, 1_000_000, 1000),
  BERTH_MAX_LOG_STREAMS: wholeNumber(1, 1_000_000, 1000),
  BERTH_TENANT_MAX_LOG_STREAMS: wholeNumber(1, 1_000_000, 100),
  BERTH_RUNTIME: z
    .string()
    .regex(/^[A-Za-z0-9_.-]*$/, "must be a Docker runtime name such as runsc")
    .default(""),
  BERTH_DISK_BUDGET_BYTES: wholeNumber(0, 2 ** 53, 0),
  BERTH_RATE_LIMIT_PER_MINUTE: wholeNumber(0, 1_000_000, 1200),
  BERTH_AUTH_FAILURES_PER_MINUTE: wholeNumber(0, 1_000_000, 30),
  BERTH_WARM_POOL: wholeNumber(0, 64, 2),
  BERTH_WARM_POOL_PROFILES: z.string().default(""),
  BERTH_WARM_POOL_MAX_AGE_SECONDS: seconds(600),
  BERTH_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,39}$/, "must be 1-40 characters of a-z, 0-9 and -")
    .default("berth"),
  BERTH_NODE_ID: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
    .optional(),
  BERTH_ADVERTISE_URL: z
    .string()
    .refine(
      (v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol) && new URL(v).pathname === "/",
      "must be an http:// or https:// URL without a path, e.g. http://10.0.0.5:8080",
    )
    .optional(),
  BERTH_CLUSTER_SECRET: z.string().min(32, "must be at least 32 characters (e.g. openssl rand -hex 32)").optional(),
  BERTH_LOG_FORMAT: z.enum(["auto", "json", "pretty"], "must be auto, json or pretty").default("auto"),
  // Webhooks, metrics and the BullMQ submit queue (API.md §5).
  BERTH_WEBHOOKS: csv.pipe(z.array(z.string().regex(/^[A-Za-z0-9_.-]{1,64}:\S+$/, "each entry must be tenant:url"))),
  BERTH_WEBHOOK_SECRETS: csv.pipe(
    z.array(z.string().regex(/^[A-Za-z0-9_.-]{1,64}:whsec_[A-Za-z0-9+/=]+$/, "each entry must be tenant:whsec_<base64 key>")),
  ),
  BERTH_WEBHOOK_ALLOW_PRIVATE: bool("false"),
  BERTH_WEBHOOK_ATTEMPTS: wholeNumber(1, 25, 8),
  BERTH_WEBHOOK_BACKOFF_MS: wholeNumber(1, 3_600_000, 30_000),
  BERTH_WEBHOOK_TIMEOUT_SECONDS: wholeNumber(1, 60, 10),
  BERTH_METRICS_TOKEN: z
    .string()
    .regex(/^\S{16,256}$/, "must be 16 to 256 characters without spaces")
    .optional(),
  BERTH_METRICS_TENANT_LABEL: bool("false"),
  BERTH_METRICS_PORT: z.coerce
    .number("must be a port from 1 to 65535")
    .int("must be a port from 1 to 65535")
    .min(1, "must be a port from 1 to 65535")
    .max(65_535, "must be a port from 1 to 65535")
    .optional(),
  BERTH_QUEUE_TENANT: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, "must be a tenant name: 1-64 characters of A-Z, a-z, 0-9, _ . -")
    .default("default"),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"], "must be a pino level").default("info"),
});

/** Values whose content must never appear in an error message or a log line. */
const SECRET = new Set([
  "BERTH_API_KEYS",
  "BERTH_ADMIN_KEYS",
  "BERTH_REDIS_URL",
  "BERTH_CLUSTER_SECRET",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "BERTH_WEBHOOKS",
  "BERTH_WEBHOOK_SECRETS",
  "BERTH_METRICS_TOKEN",
]);

/** `s3://bucket` or `s3://bucket/prefix`: an S3 bucket name, then an optional key prefix without empty segments. */
const S3_URL = /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[A-Za-z0-9!_.*'()-]+)*\/?$/;

/** Where archives live: BERTH_ARCHIVE_DIR on this host, or an S3-compatible bucket every host shares. */
export type ArchiveStoreConfig =
  | { readonly kind: "local"; readonly dir: string }
  | {
      readonly kind: "s3";
      readonly bucket: string;
      /** Key prefix without leading or trailing "/" ("" for the bucket's root). */
      readonly prefix: string;
      /** Undefined: AWS itself. */
      readonly endpoint: string | undefined;
      readonly region: string;
      readonly forcePathStyle: boolean;
      /** From AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN); undefined: the SDK's default chain. */
      readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string } | undefined;
    };

export interface Limits {
  readonly memoryMb: number;
  readonly cpus: number;
  readonly pids: number;
  readonly diskMb: number;
}

export interface WebhookSettings {
  /** Tenant → the URL its tasks' webhooks go to when a task names none. */
  readonly defaults: ReadonlyMap<string, string>;
  /** Tenant → its Standard Webhooks signing secret (`whsec_…`). A tenant without one cannot have webhooks. */
  readonly secrets: ReadonlyMap<string, string>;
  /** Whether targets on loopback, private, link-local and CGNAT addresses are allowed (tests, internal receivers). */
  readonly allowPrivate: boolean;
  /** Deliveries tried per event, the first included. */
  readonly attempts: number;
  /** Wait before the second attempt; each later wait doubles (less up to a quarter of jitter). */
  readonly backoffMs: number;
  /** Longest one attempt may take, from connecting to the response's status line. */
  readonly timeoutMs: number;
}

export interface Config {
  /** BERTH_REDIS_URL as given (a secret: it may hold a password). */
  readonly redisUrl: string;
  /** What BERTH_REDIS_URL names: one Redis, a master behind Sentinel, or a Redis Cluster. */
  readonly redis: RedisTarget;
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly maxBodyBytes: number;
    /** The whole request (headers and body) must arrive within this; responses (SSE, long polls) are not limited. */
    readonly requestTimeoutSeconds: number;
    /** Open connections in all, and from one client address; more are answered 429 and closed. */
    readonly maxConnections: number;
    readonly maxConnectionsPerAddress: number;
  };
  /** Log responses (SSE and plain text) open at once, in all and per tenant; more answer 429. */
  readonly logStreams: { readonly max: number; readonly perTenant: number };
  /** Roots of workspaces, archives and tenants' shared caches (each cache a directory behind a Docker volume). */
  readonly dirs: { readonly workspaces: string; readonly archives: string; readonly caches: string };
  /** Where archives are stored; with S3, BERTH_ARCHIVE_DIR still holds temporary downloads (fromTask). */
  readonly archiveStore: ArchiveStoreConfig;
  /** This process's host identity (BERTH_NODE_ID, default the hostname): the workspaces and per-host cleanup it owns. */
  readonly nodeId: string;
  /** Many hosts: how an API process on another host reaches this worker, and the secret that signs such requests. */
  readonly cluster: { readonly advertiseUrl: string | null; readonly secret: string | null };
  /** API key → tenant. Empty means single-tenant "default" mode (loopback only). */
  readonly apiKeys: ReadonlyMap<string, string>;
  /** Keys with admin rights: every tenant's tasks, audit trail and usage. Only with apiKeys. */
  readonly adminKeys: readonly string[];
  /** Bytes a tenant's workspaces, archives and caches may hold before its submits are refused (0 = no limit). */
  readonly tenantMaxStoredBytes: number;
  /** Days audit entries and per-task CPU records are kept. */
  readonly auditRetentionDays: number;
  /** Days a shared cache may go unused before cleanup removes it. */
  readonly cacheIdleDays: number;
  readonly images: { readonly defaultImage: string; readonly allowed: readonly string[] };
  readonly worker: {
    readonly concurrency: number;
    readonly runnerUser: string;
    readonly allowNetwork: boolean;
    readonly maxOutputBytes: number;
    readonly tmpfsMb: number;
    readonly stopGraceSeconds: number;
    readonly archiveTimeoutSeconds: number;
    readonly shutdownTimeoutSeconds: number;
    /** Docker runtime for task containers ("" = the engine's default, e.g. runc; "runsc" for gVisor). */
    readonly runtime: string;
  };
  readonly limits: { readonly defaults: Limits; readonly max: Limits };
  /** Containers each worker keeps started ahead, per profile (the default one first), and how long one may wait. */
  readonly warmPool: { readonly profiles: readonly WarmProfile[]; readonly maxAgeSeconds: number };
  readonly timeouts: { readonly defaultSeconds: number; readonly maxSeconds: number };
  readonly retention: { readonly defaultSeconds: number; readonly maxSeconds: number; readonly cleanupIntervalSeconds: number };
  readonly tenantMaxActive: number;
  /** Workspaces + archives above this many bytes make cleanup expire the oldest finished tasks first (0 = off). */
  readonly diskBudgetBytes: number;
  /** Requests per minute one tenant may make; 0 = unlimited. */
  readonly rateLimitPerMinute: number;
  /** Failed authentications per minute one client address may make before all its keyed requests answer 429; 0 = unlimited. */
  readonly authFailuresPerMinute: number;
  /** Prefix of every Redis key, queue and container label; separate berth installations on one Redis/engine differ here. */
  readonly namespace: string;
  readonly webhooks: WebhookSettings;
  readonly metrics: {
    /** When set, `GET /metrics` needs `Authorization: Bearer <token>`; otherwise it answers loopback clients only. */
    readonly token: string | null;
    /** Adds a `tenant` label to the per-task series (off by default: one series per tenant can be many). */
    readonly tenantLabel: boolean;
    /** A listener serving only /metrics (and /healthz), for processes without the API (`berth worker`); null = none. */
    readonly port: number | null;
  };
  /** Tenant of a job added to the `submit` queue without a `"tenant"` field. */
  readonly queueTenant: string;
  readonly logLevel: string;
  /** JSON lines, readable lines, or readable only when stdout is a terminal (the default). */
  readonly logFormat: "auto" | "json" | "pretty";
  /** Whether LOG_LEVEL was set (the operator commands log quietly unless asked). */
  readonly logLevelGiven: boolean;
}

/** Reads `.env` from the working directory (if present) into the environment; variables already set win. */
export function loadDotEnv(): void {
  if (existsSync(".env")) process.loadEnvFile(".env");
}

/**
 * Quiets the AWS SDK's notice, printed on every start with an object store, that its releases from 2027 on will need
 * Node.js 22: the lockfile pins the SDK, so it says nothing about this installation, and it would bury berth's own
 * start-up messages. AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=false shows it again.
 */
export function quietSdkNotices(): void {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // .env.example lists every variable with an empty value: empty means "use the default".
  const parsed = Env.safeParse(Object.fromEntries(Object.entries(env).filter(([, v]) => v !== "")));
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? "environment");
    const got = SECRET.has(name) ? "" : ` (got ${JSON.stringify(env[name])})`;
    throw invalid(name, `${issue?.message ?? "is invalid"}${got}`);
  }
  const e = parsed.data;

  // Rules across variables live here, so each can name its variable.
  const notAbove = (name: string, value: number, maxName: string, max: number) => {
    if (value > max) throw invalid(name, `must not exceed ${maxName} (${max}), got ${value}`);
  };
  notAbove("BERTH_TASK_TIMEOUT_SECONDS", e.BERTH_TASK_TIMEOUT_SECONDS, "BERTH_MAX_TASK_TIMEOUT_SECONDS", e.BERTH_MAX_TASK_TIMEOUT_SECONDS);
  notAbove("BERTH_RETENTION_SECONDS", e.BERTH_RETENTION_SECONDS, "BERTH_MAX_RETENTION_SECONDS", e.BERTH_MAX_RETENTION_SECONDS);
  notAbove("BERTH_DEFAULT_MEMORY_MB", e.BERTH_DEFAULT_MEMORY_MB, "BERTH_MAX_MEMORY_MB", e.BERTH_MAX_MEMORY_MB);
  notAbove("BERTH_DEFAULT_CPUS", e.BERTH_DEFAULT_CPUS, "BERTH_MAX_CPUS", e.BERTH_MAX_CPUS);
  notAbove("BERTH_DEFAULT_PIDS", e.BERTH_DEFAULT_PIDS, "BERTH_MAX_PIDS", e.BERTH_MAX_PIDS);
  notAbove("BERTH_DEFAULT_DISK_MB", e.BERTH_DEFAULT_DISK_MB, "BERTH_MAX_DISK_MB", e.BERTH_MAX_DISK_MB);
  notAbove("BERTH_MAX_CONNECTIONS_PER_ADDRESS", e.BERTH_MAX_CONNECTIONS_PER_ADDRESS, "BERTH_MAX_CONNECTIONS", e.BERTH_MAX_CONNECTIONS);
  notAbove("BERTH_TENANT_MAX_LOG_STREAMS", e.BERTH_TENANT_MAX_LOG_STREAMS, "BERTH_MAX_LOG_STREAMS", e.BERTH_MAX_LOG_STREAMS);
  if (e.BERTH_API_KEYS.length === 0 && !isLoopback(e.BERTH_HOST)) {
    throw invalid("BERTH_API_KEYS", `is empty, so berth serves without keys and may only listen on loopback, not ${e.BERTH_HOST}`);
  }
  const apiKeys = new Map<string, string>();
  for (const pair of e.BERTH_API_KEYS) {
    const at = pair.indexOf(":");
    const key = pair.slice(at + 1);
    if (apiKeys.has(key)) throw invalid("BERTH_API_KEYS", "the same key is given to more than one tenant");
    apiKeys.set(key, pair.slice(0, at));
  }
  if (e.BERTH_ADMIN_KEYS.some((k) => apiKeys.has(k))) {
    throw invalid("BERTH_ADMIN_KEYS", "a key is both a tenant's (BERTH_API_KEYS) and an admin's; give each its own");
  }
  const inside = (a: string, b: string) => a === b || a.startsWith(b + path.sep) || b.startsWith(a + path.sep);
  if (inside(e.BERTH_WORKSPACE_DIR, e.BERTH_ARCHIVE_DIR)) {
    throw invalid(
      "BERTH_ARCHIVE_DIR",
      `must not be inside BERTH_WORKSPACE_DIR or contain it (a task could write archives), got ${e.BERTH_ARCHIVE_DIR}`,
    );
  }
  if (e.BERTH_ADVERTISE_URL && !e.BERTH_CLUSTER_SECRET) {
    throw invalid("BERTH_CLUSTER_SECRET", "is required with BERTH_ADVERTISE_URL (the same value on every process of the deployment)");
  }
  if ((env.AWS_ACCESS_KEY_ID ? 1 : 0) + (env.AWS_SECRET_ACCESS_KEY ? 1 : 0) === 1) {
    throw invalid(
      env.AWS_ACCESS_KEY_ID ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID",
      "must be set together with the other AWS_* key variable",
    );
  }
  for (const [name, dir] of [
    ["BERTH_WORKSPACE_DIR", e.BERTH_WORKSPACE_DIR],
    ["BERTH_ARCHIVE_DIR", e.BERTH_ARCHIVE_DIR],
  ] as const) {
    if (inside(e.BERTH_CACHE_DIR, dir)) {
      throw invalid("BERTH_CACHE_DIR", `must not be inside ${name} or contain it (each is cleaned on its own), got ${e.BERTH_CACHE_DIR}`);
    }
  }
  if (e.BERTH_ADMIN_KEYS.length > 0 && e.BERTH_API_KEYS.length === 0) {
    throw invalid("BERTH_ADMIN_KEYS", "needs BERTH_API_KEYS: without tenant keys berth serves one tenant with no keys at all");
  }
  if (new Set(e.BERTH_ADMIN_KEYS).size !== e.BERTH_ADMIN_KEYS.length) throw invalid("BERTH_ADMIN_KEYS", "the same key is listed twice");
  const webhooks = webhookSettings(e);
  if (e.BERTH_METRICS_PORT !== undefined && e.BERTH_METRICS_PORT === e.BERTH_PORT) {
    throw invalid("BERTH_METRICS_PORT", `must differ from BERTH_PORT (${e.BERTH_PORT}), which serves /metrics already`);
  }
  const allowed = e.BERTH_ALLOWED_IMAGES.length > 0 ? e.BERTH_ALLOWED_IMAGES : [e.BERTH_DEFAULT_IMAGE];
  const defaults = {
    memoryMb: e.BERTH_DEFAULT_MEMORY_MB,
    cpus: e.BERTH_DEFAULT_CPUS,
    pids: e.BERTH_DEFAULT_PIDS,
    diskMb: e.BERTH_DEFAULT_DISK_MB,
  };
  const max = { memoryMb: e.BERTH_MAX_MEMORY_MB, cpus: e.BERTH_MAX_CPUS, pids: e.BERTH_MAX_PIDS, diskMb: e.BERTH_MAX_DISK_MB };
  let warmProfiles: WarmProfile[];
  try {
    warmProfiles = parseWarmProfiles(e.BERTH_WARM_POOL_PROFILES, {
      defaultImage: e.BERTH_DEFAULT_IMAGE,
      defaultSize: e.BERTH_WARM_POOL,
      defaults,
      max,
      imageAllowed: (image) => imageAllowed(image, allowed),
    });
  } catch (err) {
    throw invalid("BERTH_WARM_POOL_PROFILES", (err as Error).message);
  }

  return Object.freeze({
    redisUrl: e.BERTH_REDIS_URL,
    redis: parseRedisUrl(e.BERTH_REDIS_URL),
    http: {
      host: e.BERTH_HOST,
      port: e.BERTH_PORT,
      maxBodyBytes: e.BERTH_MAX_BODY_BYTES,
      requestTimeoutSeconds: e.BERTH_REQUEST_TIMEOUT_SECONDS,
      maxConnections: e.BERTH_MAX_CONNECTIONS,
      maxConnectionsPerAddress: e.BERTH_MAX_CONNECTIONS_PER_ADDRESS,
    },
    logStreams: { max: e.BERTH_MAX_LOG_STREAMS, perTenant: e.BERTH_TENANT_MAX_LOG_STREAMS },
    dirs: { workspaces: e.BERTH_WORKSPACE_DIR, archives: e.BERTH_ARCHIVE_DIR, caches: e.BERTH_CACHE_DIR },
    archiveStore: archiveStore(e),
    nodeId: e.BERTH_NODE_ID ?? hostname(),
    cluster: { advertiseUrl: e.BERTH_ADVERTISE_URL?.replace(/\/$/, "") ?? null, secret: e.BERTH_CLUSTER_SECRET ?? null },
    apiKeys,
    adminKeys: e.BERTH_ADMIN_KEYS,
    tenantMaxStoredBytes: e.BERTH_TENANT_MAX_STORED_BYTES,
    auditRetentionDays: e.BERTH_AUDIT_RETENTION_DAYS,
    cacheIdleDays: e.BERTH_CACHE_IDLE_DAYS,
    images: { defaultImage: e.BERTH_DEFAULT_IMAGE, allowed },
    worker: {
      concurrency: e.BERTH_CONCURRENCY,
      runnerUser: e.BERTH_RUNNER_USER,
      allowNetwork: e.BERTH_ALLOW_NETWORK,
      maxOutputBytes: e.BERTH_MAX_OUTPUT_BYTES,
      tmpfsMb: e.BERTH_TMPFS_MB,
      stopGraceSeconds: e.BERTH_STOP_GRACE_SECONDS,
      archiveTimeoutSeconds: e.BERTH_ARCHIVE_TIMEOUT_SECONDS,
      shutdownTimeoutSeconds: e.BERTH_SHUTDOWN_TIMEOUT_SECONDS,
      runtime: e.BERTH_RUNTIME,
    },
    limits: { defaults, max },
    warmPool: { profiles: warmProfiles, maxAgeSeconds: e.BERTH_WARM_POOL_MAX_AGE_SECONDS },
    timeouts: { defaultSeconds: e.BERTH_TASK_TIMEOUT_SECONDS, maxSeconds: e.BERTH_MAX_TASK_TIMEOUT_SECONDS },
    retention: {
      defaultSeconds: e.BERTH_RETENTION_SECONDS,
      maxSeconds: e.BERTH_MAX_RETENTION_SECONDS,
      cleanupIntervalSeconds: e.BERTH_CLEANUP_INTERVAL_SECONDS,
    },
    tenantMaxActive: e.BERTH_TENANT_MAX_ACTIVE,
    diskBudgetBytes: e.BERTH_DISK_BUDGET_BYTES,
    rateLimitPerMinute: e.BERTH_RATE_LIMIT_PER_MINUTE,
    authFailuresPerMinute: e.BERTH_AUTH_FAILURES_PER_MINUTE,
    namespace: e.BERTH_NAMESPACE,
    webhooks,
    metrics: {
      token: e.BERTH_METRICS_TOKEN ?? null,
      tenantLabel: e.BERTH_METRICS_TENANT_LABEL,
      port: e.BERTH_METRICS_PORT ?? null,
    },
    queueTenant: e.BERTH_QUEUE_TENANT,
    logLevel: e.LOG_LEVEL,
    logLevelGiven: Boolean(env.LOG_LEVEL),
    logFormat: e.BERTH_LOG_FORMAT,
  });
}

function archiveStore(e: z.infer<typeof Env>): ArchiveStoreConfig {
  if (e.BERTH_ARCHIVE_STORE === "local") return { kind: "local", dir: e.BERTH_ARCHIVE_DIR };
  const [bucket = "", ...prefix] = e.BERTH_ARCHIVE_STORE.slice("s3://".length).split("/");
  const credentials =
    e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY
      ? {
          accessKeyId: e.AWS_ACCESS_KEY_ID,
          secretAccessKey: e.AWS_SECRET_ACCESS_KEY,
          ...(e.AWS_SESSION_TOKEN ? { sessionToken: e.AWS_SESSION_TOKEN } : {}),
        }
      : undefined;
  return {
    kind: "s3",
    bucket,
    prefix: prefix.filter(Boolean).join("/"),
    endpoint: e.BERTH_S3_ENDPOINT,
    region: e.BERTH_S3_REGION,
    forcePathStyle: e.BERTH_S3_FORCE_PATH_STYLE,
    credentials,
  };
}

/** Tenant defaults and secrets of webhooks: each default URL well formed, each secret a usable key. */
function webhookSettings(e: z.infer<typeof Env>): WebhookSettings {
  const pairs = (name: string, entries: readonly string[]) => {
    const map = new Map<string, string>();
    for (const entry of entries) {
      const at = entry.indexOf(":");
      const tenant = entry.slice(0, at);
      if (map.has(tenant)) throw invalid(name, `tenant "${tenant}" is listed twice`);
      map.set(tenant, entry.slice(at + 1));
    }
    return map;
  };
  const defaults = pairs("BERTH_WEBHOOKS", e.BERTH_WEBHOOKS);
  const secrets = pairs("BERTH_WEBHOOK_SECRETS", e.BERTH_WEBHOOK_SECRETS);
  for (const [tenant, url] of defaults) {
    const problem = webhookUrlProblem(url);
    if (problem) throw invalid("BERTH_WEBHOOKS", `the URL of tenant "${tenant}" ${problem}`);
    if (!secrets.has(tenant)) throw invalid("BERTH_WEBHOOKS", `tenant "${tenant}" has no secret in BERTH_WEBHOOK_SECRETS to sign with`);
  }
  for (const [tenant, secret] of secrets) {
    // Standard Webhooks: whsec_ followed by the base64 of a 24 to 64 byte key.
    const key = Buffer.from(secret.slice("whsec_".length), "base64");
    if (key.length < 24 || key.length > 64 || key.toString("base64") !== secret.slice("whsec_".length)) {
      throw invalid("BERTH_WEBHOOK_SECRETS", `the secret of tenant "${tenant}" must be whsec_ and the base64 of 24 to 64 random bytes`);
    }
  }
  return {
    defaults,
    secrets,
    allowPrivate: e.BERTH_WEBHOOK_ALLOW_PRIVATE,
    attempts: e.BERTH_WEBHOOK_ATTEMPTS,
    backoffMs: e.BERTH_WEBHOOK_BACKOFF_MS,
    timeoutMs: e.BERTH_WEBHOOK_TIMEOUT_SECONDS * 1000,
  };
}

/**
 * What is wrong with a webhook URL on its face (null when nothing): it must be absolute http(s), without
 * credentials, at most 2048 characters. Where its host resolves to is checked separately (webhooks/target.ts).
 */
export function webhookUrlProblem(raw: string): string | null {
  if (raw.length > 2048) return "must be at most 2048 characters";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "must be an absolute http:// or https:// URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return `must use http or https, not ${url.protocol.slice(0, -1)}`;
  if (url.username || url.password) return "must not carry credentials (user:password@)";
  if (!url.hostname) return "must name a host";
  return null;
}

const invalid = (name: string, problem: string) =>
  new BerthError("invalid_config", `Invalid ${name}: ${problem}. See .env.example.`, { variable: name });

export const isLoopback = (host: string) => host === "localhost" || host === "::1" || host === "[::1]" || host.startsWith("127.");

/** `*` matches any run of characters; everything else is literal. */
export function imageAllowed(image: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => {
    const re = new RegExp(
      `^${p
        .split("*")
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")}$`,
    );
    return re.test(image);
  });
}
