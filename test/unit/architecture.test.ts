// The architecture's rules are checked by tools in ./scripts/test (npm run lint). These tests break each kind of
// rule on purpose, in a copy of the tree, and expect the tools to refuse it, so a rule cannot silently stop working.
import { cp, mkdtemp, rm, symlink, writeFile, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";

const ROOT = process.cwd();
let copy: string;

beforeAll(async () => {
  copy = await mkdtemp(path.join(tmpdir(), "berth-arch-"));
  for (const f of [
    ".gitignore",
    "src",
    "biome.json",
    ".dependency-cruiser.cjs",
    "tsconfig.json",
    "tsconfig.build.json",
    "package.json",
    "lint",
  ]) {
    await cp(path.join(ROOT, f), path.join(copy, f), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }
  await symlink(path.join(ROOT, "node_modules"), path.join(copy, "node_modules"));
});

afterAll(async () => {
  await rm(copy, { recursive: true, force: true });
});

const depcruise = () =>
  execa(path.join(ROOT, "node_modules/.bin/depcruise"), ["src", "--config", ".dependency-cruiser.cjs"], { cwd: copy, reject: false });
const biome = (...files: string[]) => execa(path.join(ROOT, "node_modules/.bin/biome"), ["lint", ...files], { cwd: copy, reject: false });

/** Appends `line` to a copied file, runs `check`, and restores the file. */
async function withLine<T>(file: string, line: string, check: () => Promise<T>): Promise<T> {
  const full = path.join(copy, file);
  const { readFile } = await import("node:fs/promises");
  const before = await readFile(full, "utf8");
  await appendFile(full, `\n${line}\n`);
  try {
    return await check();
  } finally {
    await writeFile(full, before);
  }
}

describe("the architecture's rules", () => {
  it("pass on the tree as it is", async () => {
    const res = await depcruise();
    expect(res.stdout + res.stderr).toMatch(/no dependency violations/);
    expect(res.exitCode).toBe(0);
  });

  it.each([
    ["a lower layer importing a higher one", "src/store/keys.ts", 'import "../api/server.js";', /layer-store/],
    ["dockerode outside runner/docker-runtime.ts", "src/queue/queue.ts", 'import "dockerode";', /dockerode-owner/],
    ["BullMQ outside queue/", "src/api/auth.ts", 'import "bullmq";', /bullmq-owner|fastify|layer/],
    ["Fastify outside api/", "src/runner/labels.ts", 'import "fastify";', /fastify-owner/],
    ["ioredis outside store/", "src/queue/orphans.ts", 'import "ioredis";', /ioredis-owner/],
    ["the AWS SDK outside archive/s3-*.ts", "src/archive/archive.ts", 'import "@aws-sdk/client-s3";', /aws-sdk-owner/],
    ["prom-client outside metrics/", "src/runner/labels.ts", 'import "prom-client";', /prom-client-owner/],
    ["standardwebhooks outside webhooks/", "src/queue/orphans.ts", 'import "standardwebhooks";', /webhooks-owner/],
    ["ipaddr.js outside webhooks/", "src/queue/orphans.ts", 'import "ipaddr.js";', /webhooks-owner/],
    ["swagger-ui-dist outside api/", "src/queue/orphans.ts", 'import "swagger-ui-dist";', /openapi-owner/],
    ["the SDK importing server code", "src/client/index.ts", 'import "../errors.js";', /client-stands-alone/],
    ["the CLI loading server code eagerly", "src/cli/main.ts", 'import "../cleanup/sweep.js";', /cli-loads-server-lazily/],
    ["an import circle", "src/domain/task.ts", 'import "./validate.js";', /no-circular/],
    ["the dashboard importing server code", "src/web/format.ts", 'import "../api/views.js";', /web-runs-in-the-browser/],
    ["the dashboard importing a Node built-in", "src/web/format.ts", 'import "node:fs";', /web-runs-in-the-browser/],
    ["server code importing the dashboard", "src/api/views.ts", 'import "../web/format.js";', /nothing-imports-web/],
  ])("refuses %s", async (_what, file, line, rule) => {
    const res = await withLine(file, line, depcruise);
    expect(res.exitCode).not.toBe(0);
    expect(res.stdout).toMatch(rule);
  });

  it("refuses reading process.env outside src/config/, and console output in the server", async () => {
    const env = await withLine("src/runner/labels.ts", "export const leaked = process.env.HOME;", () => biome("src/runner/labels.ts"));
    expect(env.exitCode).not.toBe(0);
    expect(env.stdout + env.stderr).toMatch(/noProcessEnv/);
    const log = await withLine("src/queue/queue.ts", 'console.log("hi");', () => biome("src/queue/queue.ts"));
    expect(log.exitCode).not.toBe(0);
    expect(log.stdout + log.stderr).toMatch(/noConsole/);
  });

  it("refuses Redis commands outside src/store/ and the log store, and allows them there", async () => {
    const raw = "export const raw = (deps: { redis: { ping(): Promise<string> } }) => deps.redis.ping();";
    for (const file of ["src/queue/queue.ts", "src/cleanup/sweep.ts", "src/logs/live-hub.ts"]) {
      const res = await withLine(file, raw, () => biome(file));
      expect(res.exitCode).not.toBe(0);
      expect(res.stdout + res.stderr).toMatch(/Redis commands belong in src\/store\//);
    }
    for (const file of ["src/store/task-store.ts", "src/logs/log-store.ts"]) {
      const res = await withLine(file, raw, () => biome(file));
      expect(res.stdout + res.stderr).not.toMatch(/Redis commands belong/);
      expect(res.exitCode).toBe(0);
    }
  });
});
