// `berth workspace list | info | remove | clean`, spawned as an operator would (dist/cli/main.js), on the disk and
// Redis namespace of a real berth (the harness).
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, rm, utimes } from "node:fs/promises";
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
  expect(r.stderr).toMatch(new RegExp(`^berth: ${t.id} not removed: task is running; cancel it first\\.$`, "m"));
  expect(await present(wsOf(t))).toBe(true);
  expect((await h.get(t.id)).status).toBe("running");
  await h.request("POST", `/v1/tasks/${t.id}/cancel`);
  await h.waitFinished(t.id);
});

it("removes one finished task by hand: files gone, task expired", async () => {
  const t = await finished("echo hi > out.txt");
  const dry = await berth(["remove", t.id, "--dry-run"]);
  expect(dry.exitCode).toBe(0);
  expect(dry.stdout).toMatch(new RegExp(`^would remove:\n(.*\n)?${t.id}\\s+${t.workspace}\\s+\\d+\\s+manual$`, "m"));
  expect(await present(wsOf(t))).toBe(true);
  const r = await berth(["remove", t.id]);
  expect({ exitCode: r.exitCode, stderr: r.exitCode === 0 ? "" : r.stderr }).toEqual({ exitCode: 0, stderr: "" });
  expect(r.stdout).toMatch(new RegExp(`^${t.id}\\s+${t.workspace}\\s+\\d+\\s+manual$`, "m"));
  expect(r.stdout).toMatch(/^removed 1 task\(s\), .*; they are now expired$/m);
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
  expect(real.stdout).toMatch(new RegExp(`^${t.id}\\s+${t.workspace}\\s+\\d+\\s+ttl$`, "m"));
  expect(real.stdout).toMatch(/^workspaces\/not-berth\s+foreign_name\s/m);
  expect(real.stdout).toMatch(/^removed \d+ task\(s\)/m);
  expect(await present(wsOf(t))).toBe(false);
  expect((await h.get(t.id)).status).toBe("expired");

  const bad = await berth(["clean", "--older-than-days", "soon"]);
  expect(bad.exitCode).not.toBe(0);
  expect(bad.stderr).toContain("must be a number of days");
});

interface Removed {
  taskId: string;
  workspace: string;
  bytes: number;
  why: string;
  files: string[];
}
const sorted = (list: Removed[]) => [...list].sort((a, b) => a.workspace.localeCompare(b.workspace));
const runningTask = async () => {
  const t = await h.submit({ command: ["sleep", "600"] });
  await waitFor(
    "the task to run",
    () => h.get(t.id),
    (v) => v.status === "running",
    { timeoutMs: 60_000 },
  );
  return t;
};

it("clean --all removes every finished task whatever its age, --orphans the record-less entries; dry runs list exactly what the real runs remove, and a running task is never touched", async () => {
  const young = await finished("head -c 50000 /dev/zero > data", { ttlSeconds: 86_400 });
  const other = await finished("echo x > out.txt; exit 3", { ttlSeconds: 86_400 });
  expect(other.status).toBe("failed");
  const running = await runningTask();
  const orphan = `task-1000000000000-orphan${Date.now()}`;
  const orphanDir = path.join(h.deps.config.dirs.workspaces, orphan);
  await mkdir(path.join(orphanDir, "left"), { recursive: true });
  const old = new Date(Date.now() - 30 * 86_400_000);
  await utimes(orphanDir, old, old);

  const dry = await berth(["clean", "--all", "--dry-run", "--json"]);
  expect(dry.exitCode).toBe(0);
  const planned = JSON.parse(String(dry.stdout)) as { dryRun: boolean; removed: Removed[]; skipped: { item: string; reason: string }[] };
  expect(planned.dryRun).toBe(true);
  for (const t of [young, other]) {
    const r = planned.removed.find((x) => x.taskId === t.id);
    expect(r).toMatchObject({ workspace: t.workspace, why: "all" });
    expect(r?.bytes).toBeGreaterThan(0);
  }
  expect(planned.removed.find((x) => x.taskId === young.id)?.bytes).toBeGreaterThanOrEqual(50_000);
  expect(planned.removed.map((x) => x.taskId)).not.toContain(running.id);
  expect(planned.removed.map((x) => x.workspace)).not.toContain(orphan);
  expect(planned.skipped).toContainEqual(expect.objectContaining({ item: `workspaces/${orphan}`, reason: "no_record" }));
  expect(await present(wsOf(young))).toBe(true);
  expect((await h.get(young.id)).status).toBe("succeeded");

  // The table names each task: id, workspace, bytes.
  const table = await berth(["clean", "--all", "--dry-run"]);
  expect(table.stdout).toMatch(/^would remove:$/m);
  expect(table.stdout).toMatch(/^TASK\s+WORKSPACE\s+BYTES\s+WHY$/m);
  expect(table.stdout).toMatch(new RegExp(`^${young.id}\\s+${young.workspace}\\s+\\d+\\s+all$`, "m"));

  const real = await berth(["clean", "--all", "--json"]);
  expect(real.exitCode).toBe(0);
  const done = JSON.parse(String(real.stdout)) as { dryRun: boolean; removed: Removed[] };
  expect(done.dryRun).toBe(false);
  expect(sorted(done.removed)).toEqual(sorted(planned.removed));
  for (const t of [young, other]) {
    expect(await present(wsOf(t))).toBe(false);
    expect((await h.get(t.id)).status).toBe("expired");
  }
  expect((await h.get(running.id)).status).toBe("running");
  expect(await present(wsOf(running))).toBe(true);
  expect(await present(orphanDir)).toBe(true);

  // --orphans: the record-less entry once older than the threshold (7 days by default); again dry = real.
  const dryOrphans = await berth(["clean", "--orphans", "--dry-run", "--json"]);
  expect(dryOrphans.exitCode).toBe(0);
  const plannedOrphans = (JSON.parse(String(dryOrphans.stdout)) as { removed: Removed[] }).removed;
  expect(plannedOrphans).toContainEqual(expect.objectContaining({ workspace: orphan, why: "orphan" }));
  expect(plannedOrphans.map((x) => x.taskId)).not.toContain(running.id);
  expect(await present(orphanDir)).toBe(true);
  const realOrphans = await berth(["clean", "--orphans", "--json"]);
  expect(realOrphans.exitCode).toBe(0);
  expect(sorted((JSON.parse(String(realOrphans.stdout)) as { removed: Removed[] }).removed)).toEqual(sorted(plannedOrphans));
  expect(await present(orphanDir)).toBe(false);
  expect((await h.get(running.id)).status).toBe("running");
  expect(await present(wsOf(running))).toBe(true);

  const contradictory = await berth(["clean", "--all", "--older-than-days", "3"]);
  expect(contradictory.exitCode).toBe(2);
  expect(contradictory.stderr).toContain("--older-than-days only sets the age of --orphans");

  await h.request("POST", `/v1/tasks/${running.id}/cancel`);
  await h.waitFinished(running.id);
}, 240_000);

it("remove takes several ids: removes the finished ones, names each refusal, and its dry run lists what the real run removes", async () => {
  const a = await finished("echo a > a.txt");
  const b = await finished("head -c 20000 /dev/zero > b.bin");
  const running = await runningTask();
  const ids = [a.id, b.id, running.id, "no-such-task-123"];
  const dry = await berth(["remove", ...ids, "--dry-run", "--json"]);
  expect(dry.exitCode).toBe(1);
  const planned = JSON.parse(String(dry.stdout)) as { removed: Removed[]; refused: { taskId: string; reason: string }[] };
  expect(planned.removed.map((r) => [r.taskId, r.workspace, r.why])).toEqual([
    [a.id, a.workspace, "manual"],
    [b.id, b.workspace, "manual"],
  ]);
  expect(planned.refused).toEqual([
    expect.objectContaining({ taskId: running.id, reason: "active" }),
    expect.objectContaining({ taskId: "no-such-task-123", reason: "not_found" }),
  ]);
  expect(await present(wsOf(a))).toBe(true);

  const real = await berth(["remove", ...ids]);
  expect(real.exitCode).toBe(1);
  for (const t of [a, b]) expect(real.stdout).toMatch(new RegExp(`^${t.id}\\s+${t.workspace}\\s+\\d+\\s+manual$`, "m"));
  for (const r of planned.removed) expect(real.stdout).toMatch(new RegExp(`^${r.taskId}\\s+\\S+\\s+${r.bytes}\\s`, "m"));
  expect(real.stderr).toMatch(new RegExp(`^berth: ${running.id} not removed: task is running; cancel it first\\.$`, "m"));
  expect(real.stderr).toMatch(/^berth: no-such-task-123 not removed: No task no-such-task-123 /m);
  expect(real.stdout).toMatch(/^removed 2 task\(s\), .*; 2 not removed$/m);
  for (const t of [a, b]) {
    expect(await present(wsOf(t))).toBe(false);
    expect((await h.get(t.id)).status).toBe("expired");
  }
  expect((await h.get(running.id)).status).toBe("running");
  await h.request("POST", `/v1/tasks/${running.id}/cancel`);
  await h.waitFinished(running.id);
}, 240_000);
