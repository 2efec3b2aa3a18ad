// berth's own packaging for hosts that can pull images: compose.yaml and the Dockerfile it builds.
// compose.yaml is checked with the compose tool Debian ships (docker-compose 1.29), which is stricter about
// newer syntax than Compose v2.
import { readFile } from "node:fs/promises";
import { execa } from "execa";

const composeEnv = { ...process.env, DOCKER_GID: "999", BERTH_API_KEYS: "acme:an-example-key-123" };

describe("compose.yaml", () => {
  it("is valid for Debian's docker-compose and builds berth from the Dockerfile", async () => {
    const res = await execa("docker-compose", ["-f", "compose.yaml", "config"], { env: composeEnv, reject: false });
    expect(res.stderr).toBe("");
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toMatch(/dockerfile: Dockerfile/);
    expect(res.stdout).toMatch(/BERTH_API_KEYS: acme:an-example-key-123/);
    // Cache volumes bind a host directory: the caches live in the directory mounted at the same path.
    expect(res.stdout).toContain("BERTH_CACHE_DIR: /var/lib/berth/caches");
    expect(res.stdout).toContain("/var/lib/berth:/var/lib/berth:rw");
  });

  it("refuses to start without API keys, since berth listens beyond loopback there", async () => {
    const { BERTH_API_KEYS: _unused, ...env } = composeEnv;
    const res = await execa("docker-compose", ["-f", "compose.yaml", "config"], { env, reject: false });
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toMatch(/BERTH_API_KEYS/);
  });
});

describe("compose.hosts.yaml", () => {
  const hostsEnv = { ...composeEnv, BERTH_CLUSTER_SECRET: "c".repeat(64), MINIO_ROOT_PASSWORD: "an-example-password" };

  it("is valid for Debian's docker-compose: an API process and two worker hosts over Redis and an object store", async () => {
    const res = await execa("docker-compose", ["-f", "compose.hosts.yaml", "config"], { env: hostsEnv, reject: false });
    expect(res.stderr).toBe("");
    expect(res.exitCode).toBe(0);
    for (const service of ["redis", "minio", "bucket", "api", "worker-a", "worker-b"])
      expect(res.stdout).toMatch(new RegExp(`^  ${service}:$`, "m"));
    expect(res.stdout).toMatch(/BERTH_ARCHIVE_STORE: s3:\/\/berth-archives\/archives/);
    expect(res.stdout).toMatch(/BERTH_ADVERTISE_URL: http:\/\/worker-a:8080/);
    expect(res.stdout).toMatch(/BERTH_NODE_ID: worker-b/);
    // Cache volumes bind a host directory: each worker's caches live in the directory it mounts at the same path.
    for (const w of ["worker-a", "worker-b"]) {
      expect(res.stdout).toContain(`BERTH_CACHE_DIR: /var/lib/berth/${w}/caches`);
      expect(res.stdout).toContain(`/var/lib/berth/${w}:/var/lib/berth/${w}:rw`);
    }
    expect(res.stdout).toMatch(/condition: service_completed_successfully/);
  });

  it.each(["BERTH_CLUSTER_SECRET", "MINIO_ROOT_PASSWORD", "BERTH_API_KEYS"])("refuses to start without %s", async (name) => {
    const env: Record<string, string | undefined> = { ...hostsEnv };
    delete env[name];
    const res = await execa("docker-compose", ["-f", "compose.hosts.yaml", "config"], { env, extendEnv: false, reject: false });
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toContain(name);
  });
});

describe("Dockerfile", () => {
  it("builds in two stages and runs as a non-root user, copying only what .dockerignore lets in", async () => {
    const dockerfile = await readFile("Dockerfile", "utf8");
    expect(dockerfile.match(/^FROM /gm)).toHaveLength(2);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/npm ci/);
    const ignore = (await readFile(".dockerignore", "utf8")).split("\n").filter((l) => l && !l.startsWith("#"));
    expect(ignore[0]).toBe("*");
    for (const copied of dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of (copied[1] as string).split(" ")) {
        const entry = src.includes(".") ? src : src.replace(/\/?$/, "/"); // a directory is listed as dir/
        expect(ignore).toContain(`!${entry}`);
      }
    }
  });
});
