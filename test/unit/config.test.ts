import { imageAllowed, loadConfig } from "../../src/config/config.js";

const message = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    return (err as Error).message;
  }
  return "no error";
};

describe("loadConfig", () => {
  it("uses the documented defaults", () => {
    const c = loadConfig({ HOME: "/home/x" });
    expect(c.redisUrl).toBe("redis://127.0.0.1:6379");
    expect(c.http).toMatchObject({ host: "127.0.0.1", port: 8080 });
    expect(c.images).toEqual({ defaultImage: "berth-runner:latest", allowed: ["berth-runner:latest"] });
    expect(c.worker).toMatchObject({ concurrency: 2, runnerUser: "1000:1000", allowNetwork: false, maxOutputBytes: 10_485_760 });
    expect(c.timeouts).toEqual({ defaultSeconds: 600, maxSeconds: 3600 });
    expect(c.retention).toMatchObject({ defaultSeconds: 604_800, maxSeconds: 2_592_000, cleanupIntervalSeconds: 600 });
    expect(c.tenantMaxActive).toBe(100);
    expect(c.apiKeys.size).toBe(0);
  });

  it("treats empty values as unset", () => {
    expect(loadConfig({ BERTH_PORT: "", BERTH_CONCURRENCY: "" }).http.port).toBe(8080);
  });

  it("names the variable and the bad value in one message", () => {
    expect(message({ BERTH_PORT: "80a" })).toBe(
      'Invalid BERTH_PORT: must be a whole number from 0 to 65535 (got "80a"). See .env.example.',
    );
    expect(message({ BERTH_RUNNER_USER: "0:0" })).toMatch(/^Invalid BERTH_RUNNER_USER: must not be root/);
    expect(message({ BERTH_ALLOW_NETWORK: "maybe" })).toMatch(/^Invalid BERTH_ALLOW_NETWORK: must be true or false/);
    expect(message({ BERTH_TASK_TIMEOUT_SECONDS: "5000" })).toMatch(
      /^Invalid BERTH_TASK_TIMEOUT_SECONDS: must not exceed BERTH_MAX_TASK_TIMEOUT_SECONDS \(3600\)/,
    );
  });

  it("never echoes secrets", () => {
    const m = message({ BERTH_API_KEYS: "acme-without-key" });
    expect(m).toMatch(/^Invalid BERTH_API_KEYS: each entry must be tenant:key/);
    expect(m).not.toContain("acme-without-key");
  });

  it("refuses to serve without keys beyond loopback", () => {
    expect(message({ BERTH_HOST: "0.0.0.0" })).toMatch(/BERTH_API_KEYS: is empty.*not 0\.0\.0\.0/);
    expect(loadConfig({ BERTH_HOST: "0.0.0.0", BERTH_API_KEYS: "acme:secret-key-1" }).apiKeys.get("secret-key-1")).toBe("acme");
  });

  it("has bounds on callers by default, and keeps per-address and per-tenant caps within the totals", () => {
    const c = loadConfig({ HOME: "/home/x" });
    expect(c.http).toMatchObject({ requestTimeoutSeconds: 30, maxConnections: 4000, maxConnectionsPerAddress: 1000 });
    expect(c.logStreams).toEqual({ max: 1000, perTenant: 100 });
    expect(c.authFailuresPerMinute).toBe(30);
    expect(message({ BERTH_MAX_CONNECTIONS: "10" })).toMatch(
      /^Invalid BERTH_MAX_CONNECTIONS_PER_ADDRESS: must not exceed BERTH_MAX_CONNECTIONS \(10\)/,
    );
    expect(message({ BERTH_MAX_LOG_STREAMS: "5" })).toMatch(
      /^Invalid BERTH_TENANT_MAX_LOG_STREAMS: must not exceed BERTH_MAX_LOG_STREAMS \(5\)/,
    );
    expect(message({ BERTH_REQUEST_TIMEOUT_SECONDS: "0" })).toMatch(
      /^Invalid BERTH_REQUEST_TIMEOUT_SECONDS: must be a whole number from 1/,
    );
  });

  it("refuses an archive directory inside the workspace directory", () => {
    expect(message({ BERTH_WORKSPACE_DIR: "/srv/ws", BERTH_ARCHIVE_DIR: "/srv/ws/archives" })).toMatch(/^Invalid BERTH_ARCHIVE_DIR/);
  });
});

describe("loadConfig: operators and tenants", () => {
  const KEYS = { BERTH_API_KEYS: "acme:acme-key-0001" };

  it("admin keys, the storage quota, audit retention and caches, with their defaults", () => {
    const d = loadConfig({ HOME: "/home/x" });
    expect(d).toMatchObject({ adminKeys: [], tenantMaxStoredBytes: 0, auditRetentionDays: 90, cacheIdleDays: 30 });
    expect(d.dirs.caches).toMatch(/\/\.berth\/caches$/);
    const c = loadConfig({
      ...KEYS,
      BERTH_ADMIN_KEYS: "admin-key-000000001, admin-key-000000002",
      BERTH_TENANT_MAX_STORED_BYTES: "1000000",
      BERTH_AUDIT_RETENTION_DAYS: "7",
      BERTH_CACHE_DIR: "/srv/caches",
      BERTH_CACHE_IDLE_DAYS: "3",
    });
    expect(c).toMatchObject({
      adminKeys: ["admin-key-000000001", "admin-key-000000002"],
      tenantMaxStoredBytes: 1_000_000,
      auditRetentionDays: 7,
      cacheIdleDays: 3,
    });
    expect(c.dirs.caches).toBe("/srv/caches");
  });

  it("refuses admin keys that are short, repeated, a tenant's, or without tenant keys, never echoing them", () => {
    const short = message({ ...KEYS, BERTH_ADMIN_KEYS: "short-admin" });
    expect(short).toMatch(/^Invalid BERTH_ADMIN_KEYS: each key must be at least 16 characters/);
    expect(short).not.toContain("short-admin");
    expect(message({ BERTH_ADMIN_KEYS: "admin-key-000000001" })).toMatch(/^Invalid BERTH_ADMIN_KEYS: needs BERTH_API_KEYS/);
    expect(message({ ...KEYS, BERTH_ADMIN_KEYS: "admin-key-000000001,admin-key-000000001" })).toMatch(/listed twice/);
    const shared = message({ BERTH_API_KEYS: "acme:admin-key-000000001", BERTH_ADMIN_KEYS: "admin-key-000000001" });
    expect(shared).toMatch(/^Invalid BERTH_ADMIN_KEYS: a key is both a tenant's/);
    expect(shared).not.toContain("admin-key-000000001");
  });

  it("refuses a cache directory inside (or around) the workspace or archive directory", () => {
    const dirs = { BERTH_WORKSPACE_DIR: "/srv/ws", BERTH_ARCHIVE_DIR: "/srv/ar" };
    expect(message({ ...dirs, BERTH_CACHE_DIR: "/srv/ws/caches" })).toMatch(
      /^Invalid BERTH_CACHE_DIR: must not be inside BERTH_WORKSPACE_DIR/,
    );
    expect(message({ ...dirs, BERTH_CACHE_DIR: "/srv" })).toMatch(
      /^Invalid BERTH_CACHE_DIR: must not be inside BERTH_WORKSPACE_DIR or contain it/,
    );
    expect(message({ ...dirs, BERTH_CACHE_DIR: "/srv/ar" })).toMatch(/^Invalid BERTH_CACHE_DIR: must not be inside BERTH_ARCHIVE_DIR/);
    expect(message({ BERTH_TENANT_MAX_STORED_BYTES: "lots" })).toMatch(/^Invalid BERTH_TENANT_MAX_STORED_BYTES: must be a whole number/);
    expect(message({ BERTH_CACHE_IDLE_DAYS: "0" })).toMatch(/^Invalid BERTH_CACHE_IDLE_DAYS: must be a whole number from 1/);
  });
});

describe("loadConfig, more rules", () => {
  it("reads the server's settings into their places", () => {
    const c = loadConfig({
      HOME: "/home/x",
      BERTH_WORKSPACE_DIR: "~/ws",
      BERTH_ARCHIVE_DIR: "/srv/archives",
      BERTH_ALLOWED_IMAGES: " berth-runner:* , python:3.* ,",
      BERTH_DISK_BUDGET_BYTES: "1073741824",
      BERTH_NAMESPACE: "berth-staging",
      BERTH_ALLOW_NETWORK: "1",
      LOG_LEVEL: "debug",
    });
    expect(c.dirs.archives).toBe("/srv/archives");
    expect(c.dirs.workspaces.endsWith("/ws")).toBe(true);
    expect(c.dirs.workspaces.startsWith("~")).toBe(false);
    expect(c.images.allowed).toEqual(["berth-runner:*", "python:3.*"]);
    expect(c.diskBudgetBytes).toBe(1_073_741_824);
    expect(c.namespace).toBe("berth-staging");
    expect(c.worker.allowNetwork).toBe(true);
    expect(c).toMatchObject({ logLevel: "debug", logLevelGiven: true });
    expect(loadConfig({}).logLevelGiven).toBe(false);
  });

  it("maps each API key to its tenant, and refuses a key given to two tenants", () => {
    const c = loadConfig({ BERTH_API_KEYS: "acme:key-aaaa-1,globex:key-bbbb-2" });
    expect([...c.apiKeys]).toEqual([
      ["key-aaaa-1", "acme"],
      ["key-bbbb-2", "globex"],
    ]);
    const m = message({ BERTH_API_KEYS: "acme:same-key-1,globex:same-key-1" });
    expect(m).toBe("Invalid BERTH_API_KEYS: the same key is given to more than one tenant. See .env.example.");
    expect(m).not.toContain("same-key-1");
  });

  it("never echoes the Redis URL (it may hold a password)", () => {
    const m = message({ BERTH_REDIS_URL: "http://user:hunter2@db:6379" });
    expect(m).toBe(
      "Invalid BERTH_REDIS_URL: must start with redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://. See .env.example.",
    );
    const bad = message({ BERTH_REDIS_URL: "redis+sentinel://admin:hunter2@s1:26379,s2:x/berth" });
    expect(bad).toMatch(/^Invalid BERTH_REDIS_URL: has "s2:x" where a host\[:port\] belongs/);
    expect(bad).not.toMatch(/hunter2|admin/);
  });

  it("reads the Sentinel and Cluster forms of BERTH_REDIS_URL", () => {
    expect(loadConfig({ BERTH_REDIS_URL: "redis+sentinel://:pw@s1:26379,s2:26380/berth" }).redis).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26380 },
      ],
      masterName: "berth",
      password: "pw",
      tls: false,
    });
    expect(loadConfig({ BERTH_REDIS_URL: "redis+cluster://h1:7000,h2:7001" }).redis).toMatchObject({ kind: "cluster" });
    expect(loadConfig({}).redis).toEqual({ kind: "single", url: "redis://127.0.0.1:6379" });
    expect(message({ BERTH_REDIS_URL: "redis+sentinel://s1:26379" })).toMatch(/^Invalid BERTH_REDIS_URL: names no master after the hosts/);
  });

  it("refuses a default above its maximum, naming both variables", () => {
    expect(message({ BERTH_DEFAULT_MEMORY_MB: "8192" })).toBe(
      "Invalid BERTH_DEFAULT_MEMORY_MB: must not exceed BERTH_MAX_MEMORY_MB (4096), got 8192. See .env.example.",
    );
    expect(message({ BERTH_DEFAULT_CPUS: "4" })).toMatch(/^Invalid BERTH_DEFAULT_CPUS: must not exceed BERTH_MAX_CPUS \(2\)/);
    expect(message({ BERTH_RETENTION_SECONDS: "2592001" })).toMatch(
      /^Invalid BERTH_RETENTION_SECONDS: must not exceed BERTH_MAX_RETENTION_SECONDS/,
    );
  });

  it("refuses values of the wrong shape, naming the variable and the value", () => {
    expect(message({ BERTH_NAMESPACE: "Berth:prod" })).toBe(
      'Invalid BERTH_NAMESPACE: must be 1-40 characters of a-z, 0-9 and - (got "Berth:prod"). See .env.example.',
    );
    expect(message({ BERTH_CONCURRENCY: "0" })).toBe(
      'Invalid BERTH_CONCURRENCY: must be a whole number from 1 to 256 (got "0"). See .env.example.',
    );
    expect(message({ BERTH_RUNTIME: "runsc; rm -rf /" })).toMatch(/^Invalid BERTH_RUNTIME: must be a Docker runtime name/);
    expect(message({ LOG_LEVEL: "verbose" })).toMatch(/^Invalid LOG_LEVEL: must be a pino level/);
    expect(message({ BERTH_DEFAULT_CPUS: "lots" })).toMatch(/^Invalid BERTH_DEFAULT_CPUS: must be a number of CPUs/);
  });

  it("refuses a workspace directory inside the archive directory too", () => {
    expect(message({ BERTH_WORKSPACE_DIR: "/srv/data/ws", BERTH_ARCHIVE_DIR: "/srv/data" })).toMatch(
      /^Invalid BERTH_ARCHIVE_DIR: must not be inside/,
    );
    expect(message({ BERTH_WORKSPACE_DIR: "/srv/ws", BERTH_ARCHIVE_DIR: "/srv/ws-archives" })).toBe("no error");
  });
});

describe("loadConfig, many hosts", () => {
  const SECRET = "x".repeat(40);

  it("keeps archives in BERTH_ARCHIVE_DIR by default, and reads s3://bucket/prefix with its endpoint and keys", () => {
    expect(loadConfig({ BERTH_ARCHIVE_DIR: "/srv/ar" }).archiveStore).toEqual({ kind: "local", dir: "/srv/ar" });
    const c = loadConfig({
      BERTH_ARCHIVE_STORE: "s3://berth-archives/prod/eu/",
      BERTH_S3_ENDPOINT: "http://10.0.0.9:7480",
      BERTH_S3_FORCE_PATH_STYLE: "true",
      AWS_ACCESS_KEY_ID: "AKIAEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "secret-example",
    });
    expect(c.archiveStore).toEqual({
      kind: "s3",
      bucket: "berth-archives",
      prefix: "prod/eu",
      endpoint: "http://10.0.0.9:7480",
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: "AKIAEXAMPLE", secretAccessKey: "secret-example" },
    });
    expect(loadConfig({ BERTH_ARCHIVE_STORE: "s3://bucket" }).archiveStore).toMatchObject({
      bucket: "bucket",
      prefix: "",
      credentials: undefined,
    });
  });

  it("refuses a store, endpoint or region of the wrong shape, naming the variable", () => {
    for (const bad of ["s3://", "s3://UPPER/x", "s3://b/a//b", "file:///srv", "/srv/archives", "s3://bucket/x?y"]) {
      expect([bad, message({ BERTH_ARCHIVE_STORE: bad })]).toEqual([
        bad,
        expect.stringMatching(/^Invalid BERTH_ARCHIVE_STORE: must be empty/),
      ]);
    }
    expect(message({ BERTH_S3_ENDPOINT: "10.0.0.9:7480" })).toMatch(/^Invalid BERTH_S3_ENDPOINT: must be an http:\/\/ or https:\/\/ URL/);
    expect(message({ BERTH_S3_REGION: "EU West" })).toMatch(/^Invalid BERTH_S3_REGION/);
    expect(message({ BERTH_S3_FORCE_PATH_STYLE: "yes" })).toMatch(/^Invalid BERTH_S3_FORCE_PATH_STYLE: must be true or false/);
  });

  it("wants both AWS keys or neither, and never echoes the secret one", () => {
    expect(message({ AWS_ACCESS_KEY_ID: "AKIAEXAMPLE" })).toMatch(/^Invalid AWS_SECRET_ACCESS_KEY: must be set together/);
    const m = message({ AWS_SECRET_ACCESS_KEY: "very-secret-value" });
    expect(m).toMatch(/^Invalid AWS_ACCESS_KEY_ID/);
    expect(m).not.toContain("very-secret-value");
  });

  it("takes this host's identity from BERTH_NODE_ID, the hostname by default", async () => {
    const { hostname } = await import("node:os");
    expect(loadConfig({}).nodeId).toBe(hostname());
    expect(loadConfig({ BERTH_NODE_ID: "worker-b.eu" }).nodeId).toBe("worker-b.eu");
    expect(message({ BERTH_NODE_ID: "has space" })).toMatch(/^Invalid BERTH_NODE_ID/);
  });

  it("requires BERTH_CLUSTER_SECRET with BERTH_ADVERTISE_URL, long enough and never echoed", () => {
    expect(message({ BERTH_ADVERTISE_URL: "http://10.0.0.5:8080" })).toMatch(
      /^Invalid BERTH_CLUSTER_SECRET: is required with BERTH_ADVERTISE_URL/,
    );
    const short = message({ BERTH_ADVERTISE_URL: "http://10.0.0.5:8080", BERTH_CLUSTER_SECRET: "tooshort" });
    expect(short).toMatch(/^Invalid BERTH_CLUSTER_SECRET: must be at least 32 characters/);
    expect(short).not.toContain("tooshort");
    expect(message({ BERTH_ADVERTISE_URL: "http://10.0.0.5:8080/berth", BERTH_CLUSTER_SECRET: SECRET })).toMatch(
      /^Invalid BERTH_ADVERTISE_URL: must be an http:\/\/ or https:\/\/ URL without a path/,
    );
    const c = loadConfig({ BERTH_ADVERTISE_URL: "http://10.0.0.5:8080/", BERTH_CLUSTER_SECRET: SECRET });
    expect(c.cluster).toEqual({ advertiseUrl: "http://10.0.0.5:8080", secret: SECRET });
    expect(loadConfig({}).cluster).toEqual({ advertiseUrl: null, secret: null });
  });
});

describe("imageAllowed", () => {
  it("matches * as a wildcard and everything else literally", () => {
    expect(imageAllowed("berth-runner:latest", ["berth-runner:*"])).toBe(true);
    expect(imageAllowed("python:3.12", ["berth-runner:*", "python:3.*"])).toBe(true);
    expect(imageAllowed("pythonX3.12", ["python.3.12"])).toBe(false);
    expect(imageAllowed("evil/berth-runner:latest", ["berth-runner:*"])).toBe(false);
  });
});

describe("metrics and submit-queue settings", () => {
  const message = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return "no error";
    } catch (err) {
      return (err as Error).message;
    }
  };

  it("reads them, with their defaults", () => {
    expect(loadConfig({}).metrics).toEqual({ token: null, tenantLabel: false, port: null });
    expect(loadConfig({}).queueTenant).toBe("default");
    const c = loadConfig({
      BERTH_METRICS_TOKEN: "a-long-enough-token",
      BERTH_METRICS_TENANT_LABEL: "true",
      BERTH_METRICS_PORT: "9464",
      BERTH_QUEUE_TENANT: "acme",
    });
    expect(c.metrics).toEqual({ token: "a-long-enough-token", tenantLabel: true, port: 9464 });
    expect(c.queueTenant).toBe("acme");
  });

  it("names the bad variable, never echoing the token", () => {
    const short = message({ BERTH_METRICS_TOKEN: "short" });
    expect(short).toMatch(/^Invalid BERTH_METRICS_TOKEN: must be 16 to 256 characters without spaces\. See \.env\.example\.$/);
    expect(message({ BERTH_METRICS_PORT: "8080" })).toMatch(/^Invalid BERTH_METRICS_PORT: must differ from BERTH_PORT \(8080\)/);
    expect(message({ BERTH_METRICS_PORT: "70000" })).toMatch(/^Invalid BERTH_METRICS_PORT: must be a port from 1 to 65535/);
    expect(message({ BERTH_QUEUE_TENANT: "a:b" })).toMatch(/^Invalid BERTH_QUEUE_TENANT: must be a tenant name/);
  });
});
