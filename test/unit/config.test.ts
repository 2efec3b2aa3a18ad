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

  it("refuses an archive directory inside the workspace directory", () => {
    expect(message({ BERTH_WORKSPACE_DIR: "/srv/ws", BERTH_ARCHIVE_DIR: "/srv/ws/archives" })).toMatch(/^Invalid BERTH_ARCHIVE_DIR/);
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
