// `berth workspace list | info | remove | clean`, spawned as an operator would (dist/cli/main.js), on the disk and
// Redis namespace of a real berth (the harness).
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import type { TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { waitFor } from "../helpers/wait-for.js";

const CLI = path.join(process.cwd(), "dist/cli/main.js");
let h: Harness;
let cwd: string;

beforeAll(async () => {
  // jest's globalSetup (test/helpers/build-once.js) builds dist/.
  if (!existsSync(CLI)) throw new Error(`${CLI} was not built; run npm run build`);
  h = await startHarness();
  cwd = await mkdtemp(path.join(tmpdir(), "berth-ws-cli-")); // no .env here
}, 120_000);
afterAll(async () => {
  await h?.close();
  if (cwd) await rm(cwd, { recursive: true, force: true });
});

function berth(args: string[]) {
  return execa("node", [CLI, "workspace", ...args], {
    cwd,
    reject: false,
    timeout: 60_000,
    env: {
      BERTH_REDIS_URL: h.deps.config.redisUrl,
      BERTH_WORKSPACE_DIR: h.deps.config.dirs.workspaces,
      BERTH_ARCHIVE_DIR: h.deps.config.dirs.archives,
      BERTH_NAMESPACE: h.namespace,
      LOG_LEVEL: "",
    },
  });
}
const present = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );
const wsOf = (t: TaskView) => path.join(h.deps.config.dirs.workspaces, t.workspace);
async function finished(command: string, extra: Record<string, unknown> = {}): Promise<TaskView> {
  const t = await h.submit({ command: ["sh", "-c", command], ...extra });
  return h.waitFinished(t.id, 90_000);
}

it("lists workspaces with their task's status and size, and entries berth did not make", async () => {
  const t = await finished("head -c 100000 /dev/zero > big");
  await mkdir(path.join(h.deps.config.dirs.workspaces, "not-berth"));
  const r = await berth(["list", "--json"]);
  expect(r.exitCode).toBe(0);
  const { entries } = JSON.parse(String(r.stdout)) as {
    entries: {
      name: string;
      taskId: string | null;
      status: string | null;
      bytes: number;
      workspaceDir: boolean;
      archive: boolean;
      note: string;
    }[];
  };
  expect(entries.find((e) => e.taskId === t.id)).toMatchObject({
    name: t.workspace,
    status: "succeeded",
    workspaceDir: true,
    archive: true,
  });
  expect(entries.find((e) => e.taskId === t.id)?.bytes).toBeGreaterThanOrEqual(100_000);
  expect(entries.find((e) => e.name === "workspaces/not-berth")).toMatchObject({ taskId: null, note: "not made by berth; never removed" });
  const table = await berth(["list"]);
  expect(table.exitCode).toBe(0);
  expect(table.stdout).toMatch(/^WORKSPACE\s+TASK\s+STATUS\s+SIZE/);
  expect(table.stdout).toContain(t.workspace);
});

it("shows one task, and refuses to remove a running task's workspace", async () => {
  const t = await h.submit({ command: ["sleep", "600"] });
  await waitFor(
    "the task to run",
    () => h.get(t.id),
    (v) => v.status === "running",
    { timeoutMs: 60_000 },
  );
  const info = await berth(["info", t.id, "--json"]);
  expect(info.exitCode).toBe(0);
  expect(JSON.parse(String(info.stdout))).toMatchObject({ id: t.id, status: "running", files: { workspace: { exists: true } } });
  expect((await berth(["info", t.id])).stdout).toMatch(/^status\s+running$/m);

  const r = await berth(["remove", t.id]);
  expect(r.exitCode).toBe(1);
  expect(r.stderr).toMatch(/^berth: Not removed: task is running; cancel it first\.$/m);
  expect(await present(wsOf(t))).toBe(true);
  expect((await h.get(t.id)).status).toBe("running");
  await h.request("POST", `/v1/tasks/${t.id}/cancel`);
  await h.waitFinished(t.id);
});

it("removes one finished task by hand: files gone, task expired", async () => {
  const t = await finished("echo hi > out.txt");
  const dry = await berth(["remove", t.id, "--dry-run"]);
  expect(dry.exitCode).toBe(0);
  expect(dry.stdout).toContain(`would remove ${t.workspace}`);
  expect(await present(wsOf(t))).toBe(true);
  const r = await berth(["remove", t.id]);
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toContain(`removed ${t.workspace}`);
  expect(await present(wsOf(t))).toBe(false);
  expect((await h.get(t.id)).status).toBe("expired");
  expect((await berth(["info", "no-such-task-123"])).exitCode).toBe(1);
});

it("clean: a dry run reports what the real pass removes; options are checked", async () => {
  const t = await finished("echo bye > out.txt", { ttlSeconds: 1 });
  await waitFor(
    "the ttl to run out",
    async () => Date.now(),
    (now) => now > Date.parse(t.expiresAt ?? "") + 10,
  );
  const dry = await berth(["clean", "--dry-run", "--json"]);
  expect(dry.exitCode).toBe(0);
  const planned = JSON.parse(String(dry.stdout)) as {
    dryRun: boolean;
    removed: { taskId: string; why: string }[];
    skipped: { item: string; reason: string }[];
  };
  expect(planned.dryRun).toBe(true);
  expect(planned.removed).toContainEqual(expect.objectContaining({ taskId: t.id, why: "ttl" }));
  expect(planned.skipped).toContainEqual(expect.objectContaining({ item: "workspaces/not-berth", reason: "foreign_name" }));
  expect(await present(wsOf(t))).toBe(true);

  const real = await berth(["clean"]);
  expect(real.exitCode).toBe(0);
  expect(real.stdout).toMatch(new RegExp(`^${t.workspace}\\s+${t.id}\\s+ttl\\s`, "m"));
  expect(real.stdout).toMatch(/^workspaces\/not-berth\s+foreign_name\s/m);
  expect(real.stdout).toMatch(/^removed \d+ task\(s\)/m);
  expect(await present(wsOf(t))).toBe(false);
  expect((await h.get(t.id)).status).toBe("expired");

  const bad = await berth(["clean", "--older-than-days", "soon"]);
  expect(bad.exitCode).not.toBe(0);
  expect(bad.stderr).toContain("must be a number of days");
});
