// Shared caches end to end (real engine, Redis and disk): a cache written by one task is read by the next task of
// the same tenant, never seen by another tenant; it counts in the tenant's stored bytes; operators list and remove
// caches with `berth cache` (dist/cli/main.js), and cleanup removes idle ones.
import { existsSync } from "node:fs";
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { sweepCaches } from "../../src/cleanup/caches.js";
import type { TaskView, TenantUsage } from "../../src/contract/types.js";
import { cacheVolumeName } from "../../src/domain/caches.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { waitFor } from "../helpers/wait-for.js";

const CLI = path.join(process.cwd(), "dist/cli/main.js");
const ACME = { authorization: "Bearer acme-key-0001" };
const GLOBEX = { authorization: "Bearer globex-key-0002" };
const DAY = 86_400_000;
let h: Harness;
let cwd: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} was not built; run npm run build`);
  h = await startHarness({ BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002", BERTH_CACHE_IDLE_DAYS: "30" });
  cwd = await mkdtemp(path.join(tmpdir(), "berth-cache-cli-"));
}, 120_000);
afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  if (cwd) await rm(cwd, { recursive: true, force: true });
  expect(left).toEqual([]);
});

function berth(args: string[]) {
  return execa("node", [CLI, "cache", ...args], {
    cwd,
    reject: false,
    timeout: 60_000,
    env: {
      BERTH_REDIS_URL: h.deps.config.redisUrl,
      BERTH_WORKSPACE_DIR: h.deps.config.dirs.workspaces,
      BERTH_ARCHIVE_DIR: h.deps.config.dirs.archives,
      BERTH_CACHE_DIR: h.deps.config.dirs.caches,
      BERTH_NAMESPACE: h.namespace,
      LOG_LEVEL: "",
    },
  });
}

async function run(script: string, headers: Record<string, string>, caches = ["pip"]): Promise<{ task: TaskView; out: string }> {
  const t = await h.submit({ command: ["sh", "-c", script], caches }, headers);
  const task = await h.waitFinished(t.id, 90_000, headers);
  const out = (await h.request("GET", `/v1/tasks/${t.id}/logs`, undefined, headers)).body;
  return { task, out };
}

const volumeOf = (tenant: string, name: string) => cacheVolumeName(h.namespace, tenant, name);
const volumeExists = async (name: string) => (await execa("docker", ["volume", "inspect", name], { reject: false })).exitCode === 0;

it("a cache written by one task is read by the next task of the same tenant, and never seen by another tenant", async () => {
  const first = await run(
    'echo "from the first task" > /cache/pip/note; mkdir -p /cache/pip/wheels; head -c 200000 /dev/zero > /cache/pip/wheels/big.whl; id -u; stat -c "%u %a" /cache/pip; grep " /cache/pip " /proc/mounts',
    ACME,
  );
  expect(first.task.status).toBe("succeeded");
  expect(first.task.caches).toEqual(["pip"]);
  const [uid, owner, mount] = first.out.trim().split("\n");
  expect(uid).toBe("1000");
  expect(owner).toBe("1000 700"); // the runner user's, private
  expect(mount).toMatch(/ rw,nosuid,nodev[, ]/); // like /workspace

  const second = await run("cat /cache/pip/note; ls /cache/pip/wheels", ACME);
  expect(second.task.status).toBe("succeeded");
  expect(second.out).toBe("from the first task\nbig.whl\n");

  const other = await run('ls -A /cache/pip | wc -l; echo "globex was here" > /cache/pip/note', GLOBEX);
  expect(other.task.status).toBe("succeeded");
  expect(other.out).toBe("0\n");
  expect((await run("cat /cache/pip/note", ACME)).out).toBe("from the first task\n");
  expect((await run("cat /cache/pip/note", GLOBEX)).out).toBe("globex was here\n");

  // One volume per tenant, named after it; and the caches count in each tenant's stored bytes.
  expect(await volumeExists(volumeOf("acme", "pip"))).toBe(true);
  expect(await volumeExists(volumeOf("globex", "pip"))).toBe(true);
  const usage = (await h.request("GET", "/v1/usage", undefined, ACME)).json() as TenantUsage;
  expect(usage.storedBytes.caches).toBeGreaterThanOrEqual(200_000);
  const globex = (await h.request("GET", "/v1/usage", undefined, GLOBEX)).json() as TenantUsage;
  expect(globex.storedBytes.caches).toBeLessThan(200_000);
}, 240_000);

it("refuses bad cache names with a 400 naming the field", async () => {
  for (const [caches, field] of [
    [["Pip"], "caches.0"],
    [["../etc"], "caches.0"],
    [["pip", "pip"], "caches"],
  ] as const) {
    const res = await h.request("POST", "/v1/tasks", { command: ["true"], caches }, ACME);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(new RegExp(`^Invalid ${field.replace(".", "\\.")}: `));
  }
});

it("two tasks of one tenant may use the same cache at once: both see what the other writes", async () => {
  const a = await h.submit(
    {
      command: ["sh", "-c", "echo a > /cache/shared/a; while [ ! -e /cache/shared/b ]; do sleep 0.05; done; cat /cache/shared/b"],
      caches: ["shared"],
    },
    ACME,
  );
  const b = await h.submit(
    {
      command: ["sh", "-c", "while [ ! -e /cache/shared/a ]; do sleep 0.05; done; echo b > /cache/shared/b; cat /cache/shared/a"],
      caches: ["shared"],
    },
    ACME,
  );
  const [doneA, doneB] = await Promise.all([h.waitFinished(a.id, 90_000, ACME), h.waitFinished(b.id, 90_000, ACME)]);
  expect([doneA.status, doneB.status]).toEqual(["succeeded", "succeeded"]);
  expect((await h.request("GET", `/v1/tasks/${a.id}/logs`, undefined, ACME)).body).toBe("b\n");
  expect((await h.request("GET", `/v1/tasks/${b.id}/logs`, undefined, ACME)).body).toBe("a\n");
}, 180_000);

it("berth cache list and remove: refused while a task uses the cache, then its volume, files and bytes are gone", async () => {
  await run("echo x > /cache/tools/x", GLOBEX, ["tools"]);
  const list = await berth(["list", "--json"]);
  expect(list.exitCode).toBe(0);
  const { caches } = JSON.parse(String(list.stdout)) as { caches: { volume: string; tenant: string; name: string; bytes: number }[] };
  expect(caches).toContainEqual(expect.objectContaining({ volume: volumeOf("acme", "pip"), tenant: "acme", name: "pip" }));
  expect(caches.find((c) => c.volume === volumeOf("acme", "pip"))?.bytes).toBeGreaterThanOrEqual(200_000);
  expect(caches).toContainEqual(expect.objectContaining({ volume: volumeOf("globex", "tools"), tenant: "globex", name: "tools" }));
  expect((await berth(["list"])).stdout).toMatch(/^VOLUME\s+TENANT\s+CACHE\s+BYTES\s+LAST USED$/m);

  // In use: a running task mounts it.
  const t = await h.submit({ command: ["sh", "-c", "touch /workspace/running; sleep 600"], caches: ["tools"] }, GLOBEX);
  await waitFor(
    "the task to run",
    () =>
      access(path.join(h.deps.config.dirs.workspaces, t.workspace, "running")).then(
        () => true,
        () => false,
      ),
    (x) => x,
    { timeoutMs: 60_000 },
  );
  const busy = await berth(["remove", "globex/tools"]);
  expect(busy.exitCode).toBe(1);
  expect(busy.stderr).toContain("berth: globex/tools not removed: a task is using it.");
  expect(await volumeExists(volumeOf("globex", "tools"))).toBe(true);
  await h.request("POST", `/v1/tasks/${t.id}/cancel`, undefined, GLOBEX);
  await h.waitFinished(t.id, 60_000, GLOBEX);

  const dry = await berth(["remove", volumeOf("globex", "tools"), "--dry-run"]);
  expect(dry.stdout).toContain(`would remove ${volumeOf("globex", "tools")} (globex/tools, `);
  const gone = await berth(["remove", volumeOf("globex", "tools")]);
  expect(gone.exitCode).toBe(0);
  expect(gone.stdout).toContain(`removed ${volumeOf("globex", "tools")}`);
  expect(await volumeExists(volumeOf("globex", "tools"))).toBe(false);
  expect(existsSync(path.join(h.deps.config.dirs.caches, volumeOf("globex", "tools")))).toBe(false);
  expect((await berth(["remove", "globex/tools"])).stderr).toContain("no such cache on this host");

  // A task asking for it again starts from an empty cache.
  expect((await run("ls -A /cache/tools | wc -l", GLOBEX, ["tools"])).out).toBe("0\n");
}, 240_000);

it("cleanup removes the caches no task has used for BERTH_CACHE_IDLE_DAYS, and only those", async () => {
  await run("echo y > /cache/idle/y", GLOBEX, ["idle"]);
  const before = (await h.request("GET", "/v1/usage", undefined, GLOBEX)).json() as TenantUsage;
  const notYet = await sweepCaches(h.deps, h.services, { now: Date.now() + 29 * DAY });
  expect(notYet.removed.map((r) => r.volume)).not.toContain(volumeOf("globex", "idle"));
  const dry = await sweepCaches(h.deps, h.services, { now: Date.now() + 31 * DAY, dryRun: true });
  expect(dry.removed.map((r) => r.volume)).toContain(volumeOf("globex", "idle"));
  expect(await volumeExists(volumeOf("globex", "idle"))).toBe(true);
  const pass = await sweepCaches(h.deps, h.services, { now: Date.now() + 31 * DAY });
  expect(pass.removed.map((r) => r.volume)).toEqual(expect.arrayContaining([volumeOf("globex", "idle"), volumeOf("acme", "pip")]));
  expect(pass.removed.map((r) => r.volume).sort()).toEqual(dry.removed.map((r) => r.volume).sort());
  expect(await volumeExists(volumeOf("globex", "idle"))).toBe(false);
  const after = (await h.request("GET", "/v1/usage", undefined, GLOBEX)).json() as TenantUsage;
  expect(after.storedBytes.caches).toBeLessThan(before.storedBytes.caches);
  expect(after.storedBytes.caches).toBe(0);
}, 180_000);
