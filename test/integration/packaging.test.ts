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
  });

  it("refuses to start without API keys, since berth listens beyond loopback there", async () => {
    const { BERTH_API_KEYS: _unused, ...env } = composeEnv;
    const res = await execa("docker-compose", ["-f", "compose.yaml", "config"], { env, reject: false });
    expect(res.exitCode).not.toBe(0);
    expect(res.stderr).toMatch(/BERTH_API_KEYS/);
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
