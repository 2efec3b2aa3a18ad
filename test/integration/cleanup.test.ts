// Cleanup (src/cleanup): expiry end to end, and proof that deletion never escapes the roots, never touches a
// running task or an entry berth did not make, and removes each item once. Real Docker engine, Redis and disk.
import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, symlink, utimes, writeFile, chmod, chown } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import type { Deps } from "../../src/app/deps.js";
import { diskUsage, listLocalEntries } from "../../src/cleanup/disk-usage.js";
import { startCleanup } from "../../src/cleanup/schedule.js";
import { RECORD_RETENTION_MS, sweep, type SweepResult } from "../../src/cleanup/sweep.js";
import { newTaskId, workspaceName, type TaskRecord } from "../../src/domain/task.js";
import { removeTrees } from "../../src/workspace/workspace.js";
import { CreateMultipartUploadCommand } from "@aws-sdk/client-s3";
import type { TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { startS3, type S3Store } from "../helpers/s3.js";
import { namespaceKeys } from "../helpers/sweep.js";
import { waitFor } from "../helpers/wait-for.js";

const DAY = 86_400_000;
let h: Harness;
let canary: string;

beforeAll(async () => {
  h = await startHarness({ BERTH_CONCURRENCY: "2" });
  canary = path.join(h.root, "canary"); // a sibling of both roots: outside everything cleanup may remove
  await mkdir(path.join(canary, "sub"), { recursive: true });
  await writeFile(path.join(canary, "precious"), "keep me");
  await writeFile(path.join(canary, "sub", "also"), "keep me too");
}, 120_000);
afterAll(async () => {
  await h?.close();
});

const wsOf = (workspace: string) => path.join(h.deps.config.dirs.workspaces, workspace);
const arOf = (workspace: string) => path.join(h.deps.config.dirs.archives, `${workspace}.tar.gz`);
const present = (p: string | Buffer) =>
  lstat(p).then(
    () => true,
    () => false,
  );
const sh = (script: string, extra: Record<string, unknown> = {}) => ({ command: ["sh", "-c", script], ...extra });

async function finishedTask(body: Record<string, unknown>) {
  const t = await h.submit(body);
  const done = await h.waitFinished(t.id, 90_000);
  expect(["succeeded", "failed"]).toContain(done.status);
  return done;
}

async function canaryIntact(): Promise<void> {
  expect((await readdir(canary)).sort()).toEqual(["precious", "sub"]);
  expect(await readFile(path.join(canary, "precious"), "utf8")).toBe("keep me");
  expect(await readFile(path.join(canary, "sub", "also"), "utf8")).toBe("keep me too");
}

/** A finished task made directly in Redis and on disk (no container): for tests about many tasks at once. */
async function fakeTask(opts: {
  expiresAtMs: number;
  finishedAtMs?: number;
  host?: string | null;
  fileBytes?: number;
  createdAtMs?: number;
}) {
  const id = newTaskId();
  const createdAtMs = opts.createdAtMs ?? Date.now();
  const finishedAtMs = opts.finishedAtMs ?? createdAtMs + 1000;
  const limits = { memoryMb: 512, cpus: 1, pids: 256, diskMb: 1024 };
  const record: TaskRecord = {
    id,
    tenant: "default",
    workspace: workspaceName(createdAtMs, id),
    status: "queued",
    image: "berth-runner:latest",
    command: ["true"],
    labels: {},
    createdAtMs,
    startedAtMs: null,
    finishedAtMs: null,
    expiresAtMs: null,
    exitCode: null,
    reason: null,
    message: null,
    timeoutSeconds: 60,
    limits,
    network: "none",
    ttlSeconds: 60,
    archive: null,
    archiveSkipped: [],
    outputTruncated: false,
    cancelRequested: false,
    host: null,
  };
  const spec = {
    command: ["true"],
    image: record.image,
    env: {},
    files: {},
    fromTask: null,
    timeoutSeconds: 60,
    limits,
    network: "none" as const,
    ttlSeconds: 60,
  };
  await h.services.store.create(record, spec, { maxActive: 1_000_000, idempotencyKeyHash: null, idempotencyTtlSeconds: 60 });
  const archiveBytes = randomBytes(opts.fileBytes ?? 4096);
  await h.services.store.transition(
    id,
    "default",
    ["queued"],
    {
      status: "succeeded",
      exitCode: 0,
      startedAtMs: createdAtMs,
      finishedAtMs,
      expiresAtMs: opts.expiresAtMs,
      host: opts.host === undefined ? h.deps.host : opts.host,
      archive: { bytes: archiveBytes.length, sha256: createHash("sha256").update(archiveBytes).digest("hex") },
    },
    true,
  );
  const ws = wsOf(record.workspace);
  await mkdir(path.join(ws, "sub"), { recursive: true });
  for (let i = 0; i < 5; i++) await writeFile(path.join(ws, "sub", `f${i}`), randomBytes(opts.fileBytes ?? 4096));
  await writeFile(arOf(record.workspace), archiveBytes);
  return { id, workspace: record.workspace, ws, ar: arOf(record.workspace) };
}

const removedIds = (r: SweepResult) => r.removed.map((x) => x.taskId);
/** Makes a file that even root cannot remove (until `chattr -i`), so that `rm -rf` of its tree fails. */
const immutable = async (file: string, on: boolean) => void (await execa("chattr", [on ? "+i" : "-i", file]));

describe("expiry", () => {
  it("expires a task after its ttl: 410 for archive and logs, files and log stream gone, record purged later", async () => {
    const t = await finishedTask(sh("echo hello > out.txt; echo done", { ttlSeconds: 1 }));
    expect(t.status).toBe("succeeded");
    expect(await present(wsOf(t.workspace))).toBe(true);
    expect(await present(arOf(t.workspace))).toBe(true);
    await waitFor(
      "the ttl to run out",
      async () => Date.now(),
      (now) => now > Date.parse(t.expiresAt ?? "") + 10,
    );

    const result = await sweep(h.deps, h.services);
    const mine = result.removed.find((r) => r.taskId === t.id);
    expect(mine).toMatchObject({ why: "ttl", workspace: t.workspace });
    // The workspace, the archive and what is kept beside it (the final manifest, the change list).
    expect(mine?.files.map((f) => path.basename(f)).sort()).toEqual(
      [t.workspace, `${t.workspace}.changes.gz`, `${t.workspace}.manifest.gz`, `${t.workspace}.tar.gz`].sort(),
    );
    expect(mine?.bytes).toBeGreaterThan(0);
    expect(result.errors).toEqual([]);
    expect((await h.get(t.id)).status).toBe("expired");
    for (const what of ["archive", "logs"]) {
      const res = await h.request("GET", `/v1/tasks/${t.id}/${what}`);
      expect(res.statusCode).toBe(410);
      expect(res.json().error.code).toBe("expired");
    }
    expect(await present(wsOf(t.workspace))).toBe(false);
    expect(await present(arOf(t.workspace))).toBe(false);
    expect(await h.deps.redis.exists(h.services.keys.logs(t.id))).toBe(0);

    // Idempotent: a second pass finds nothing more to do for it.
    const again = await sweep(h.deps, h.services);
    expect(removedIds(again)).not.toContain(t.id);

    // After the record retention the record and its index entries go: 404, not 410.
    const later = await sweep(h.deps, h.services, { now: Date.now() + RECORD_RETENTION_MS + 60_000 });
    expect(later.purged).toContain(t.id);
    expect((await h.request("GET", `/v1/tasks/${t.id}`)).statusCode).toBe(404);
    expect(await h.deps.redis.zscore(h.services.keys.expiry, t.id)).toBeNull();
    const index = await h.deps.redis.zrange(h.services.keys.tenantIndex("default"), 0, -1);
    expect(index.some((m) => m.endsWith(`|${t.id}`))).toBe(false);
  }, 120_000);

  it("never touches a running task, whatever its expiry says", async () => {
    const t = await h.submit(sh("sleep 600"));
    await waitFor(
      "the task to run",
      () => h.get(t.id),
      (v) => v.status === "running",
      { timeoutMs: 60_000 },
    );
    await h.services.store.patch(t.id, { expiresAtMs: Date.now() - DAY });
    await h.deps.redis.zadd(h.services.keys.expiry, Date.now() - DAY, t.id);

    const result = await sweep(h.deps, h.services, { now: Date.now() + 60 * DAY, olderThanMs: 0, all: true, orphans: true });
    expect(removedIds(result)).not.toContain(t.id);
    expect(result.skipped).toContainEqual(expect.objectContaining({ taskId: t.id, reason: "active" }));
    expect(await present(wsOf(t.workspace))).toBe(true);
    expect((await h.get(t.id)).status).toBe("running");
    await h.request("POST", `/v1/tasks/${t.id}/cancel`);
    await h.waitFinished(t.id);
  }, 120_000);

  it("runs on a per-host BullMQ job scheduler", async () => {
    const f = await fakeTask({ expiresAtMs: Date.now() - 1000 });
    const deps: Deps = { ...h.deps, config: { ...h.deps.config, retention: { ...h.deps.config.retention, cleanupIntervalSeconds: 1 } } };
    const cleanup = await startCleanup(deps, h.services);
    try {
      await waitFor(
        "the scheduled pass",
        () => h.get(f.id),
        (v) => v.status === "expired",
        { timeoutMs: 30_000 },
      );
      // Every key of the namespace, on each master of a cluster too (KEYS would ask one node).
      const prefix = `${h.services.keys.bullPrefix}:cleanup-`;
      const schedulerKeys = (await namespaceKeys(h.deps.redis, h.deps.namespace)).map((f) => f.key).filter((k) => k.startsWith(prefix));
      expect(schedulerKeys.some((k) => k.includes(`:cleanup-${h.deps.host.replace(/[^A-Za-z0-9._-]/g, "-")}:`))).toBe(true);
      expect((await cleanup.runNow()).errors).toEqual([]);
    } finally {
      await cleanup.close();
    }
    expect(await present(f.ws)).toBe(false);
  });
});

describe("safe deletion", () => {
  it("never follows symbolic links, at any depth, inside a workspace or in place of one", async () => {
    const links = [
      `ln -s ${canary} top`,
      "mkdir -p a/b/c/d/e",
      `ln -s ${canary} a/l1`,
      `ln -s ${canary}/precious a/b/l2`,
      `ln -s ${canary}/sub a/b/c/d/e/l5`,
      "ln -s ../../../../../.. a/b/c/up",
      "ln -s / root",
      `ln -s ${h.deps.config.dirs.archives} ar`,
    ];
    const t = await finishedTask(sh(links.join(" && ")));
    const ws = wsOf(t.workspace);
    expect((await lstat(path.join(ws, "a/b/c/d/e/l5"))).isSymbolicLink()).toBe(true);
    // Made by root on the host too, and one in place of a whole (record-less) workspace.
    await symlink(canary, path.join(ws, "a/b/c/host-link"));
    const fakeWs = `task-1000000000000-${newTaskId()}`;
    await symlink(canary, wsOf(fakeWs));

    const result = await sweep(h.deps, h.services, { now: Date.now() + 60 * DAY, olderThanMs: 0, all: true, orphans: true });
    expect(result.errors).toEqual([]);
    expect(removedIds(result)).toContain(t.id);
    expect(result.removed.map((r) => r.workspace)).toContain(fakeWs);
    expect(await present(ws)).toBe(false);
    expect(await present(wsOf(fakeWs))).toBe(false);
    await canaryIntact();
  }, 120_000);

  it("removes mode-000 trees and files owned by other users", async () => {
    const t = await finishedTask(sh("mkdir -p a/b && touch a/b/f && chmod 000 a/b a && touch z && chmod 000 z && mkdir y && chmod 000 y"));
    const ws = wsOf(t.workspace);
    await writeFile(path.join(ws, "other-uid"), "x");
    await chown(path.join(ws, "other-uid"), 4242, 4242);
    await chmod(path.join(ws, "other-uid"), 0);
    const result = await sweep(h.deps, h.services, { now: Date.now() + 60 * DAY });
    expect(result.errors).toEqual([]);
    expect(removedIds(result)).toContain(t.id);
    expect(await present(ws)).toBe(false);
  }, 120_000);

  it("removes names that are not UTF-8 and a 3,000-deep directory", async () => {
    const t = await finishedTask(sh("printf x > \"$(printf 'top\\377name')\""));
    const ws = wsOf(t.workspace);
    await execa("perl", [
      "-e",
      'chdir $ARGV[0] or die; for (1..3000) { mkdir "d" or die "$!"; chdir "d" or die "$!"; } ' +
        'open(F, ">", "bad\\xff\\xfename") or die "$!"; print F "x"; close F; mkdir "dir\\xc3\\x28" or die "$!";',
      ws,
    ]);
    expect((await readdir(ws, { encoding: "buffer" })).some((n) => n.includes(0xff))).toBe(true);
    const result = await sweep(h.deps, h.services, { now: Date.now() + 60 * DAY });
    expect(result.errors).toEqual([]);
    expect(removedIds(result)).toContain(t.id);
    expect(await present(ws)).toBe(false);
  }, 120_000);

  it("removes many trees with one rm, and a tree that cannot be removed gets its own error without hiding the others'", async () => {
    const dir = path.join(h.root, `many-${newTaskId()}`);
    const trees = Array.from({ length: 40 }, (_, i) => path.join(dir, `tree-${i}`));
    for (const t of trees) {
      await mkdir(path.join(t, "a", "b"), { recursive: true });
      await writeFile(path.join(t, "a", "b", "f"), "x");
    }
    const stuck = trees[17] as string;
    const linkForTree = path.join(dir, "link-for-tree"); // where a tree is expected: unlinked, never followed
    await symlink(canary, linkForTree);
    const files = [path.join(dir, "archive.tar.gz"), path.join(dir, "link-for-file")];
    await writeFile(files[0] as string, "x");
    await symlink(path.join(canary, "precious"), files[1] as string);
    await immutable(path.join(stuck, "a", "b", "f"), true);
    try {
      const failed = await removeTrees([...trees, linkForTree, path.join(dir, "missing")], [...files, path.join(dir, "missing.tar.gz")]);
      expect([...failed.keys()]).toEqual([stuck]);
      expect(failed.get(stuck)?.message).toMatch(/Operation not permitted/);
      expect(await present(stuck)).toBe(true);
      for (const p of [...trees.filter((t) => t !== stuck), linkForTree, ...files]) expect(await present(p)).toBe(false);
      await canaryIntact();
    } finally {
      await immutable(path.join(stuck, "a", "b", "f"), false);
    }
    expect((await removeTrees([stuck])).size).toBe(0);
    expect(await present(stuck)).toBe(false);
  });

  it("reports and skips entries berth did not make, record-less, mismatched, unreadable or another host's", async () => {
    const root = h.deps.config.dirs.workspaces;
    for (const d of ["not-berth", "task-123-bad"]) await mkdir(path.join(root, d));
    await mkdir(Buffer.concat([Buffer.from(`${root}/task-`), Buffer.from([0xff, 0xfe])]));
    await writeFile(path.join(h.deps.config.dirs.archives, "random.tar.gz"), "x");
    const orphan = `task-${Date.now()}-${newTaskId()}`;
    await mkdir(wsOf(orphan));
    const corruptId = newTaskId();
    const corruptWs = `task-1700000000000-${corruptId}`;
    await mkdir(wsOf(corruptWs));
    await h.deps.redis.hset(h.services.keys.task(corruptId), "id", "{not json", "status", "succeeded");
    await h.deps.redis.zadd(h.services.keys.expiry, 1, corruptId);
    const mismatched = await fakeTask({ expiresAtMs: Date.now() + DAY });
    const wrongName = `task-1600000000000-${mismatched.id}`;
    await mkdir(wsOf(wrongName));
    const elsewhere = await fakeTask({ expiresAtMs: Date.now() - DAY, host: "some-other-host" });

    for (const opts of [{}, { orphans: true }]) {
      const result = await sweep(h.deps, h.services, opts);
      const reasons = (item: string) => result.skipped.filter((s) => s.item === item).map((s) => s.reason);
      expect(reasons("workspaces/not-berth")).toEqual(["foreign_name"]);
      expect(reasons("workspaces/task-123-bad")).toEqual(["foreign_name"]);
      expect(reasons("workspaces/task-\\xff\\xfe")).toEqual(["foreign_name"]);
      expect(reasons("archives/random.tar.gz")).toEqual(["foreign_name"]);
      expect(reasons(`workspaces/${orphan}`)).toEqual(["no_record"]);
      expect(reasons(`workspaces/${corruptWs}`)).toEqual(["corrupt_record"]);
      expect(reasons(`workspaces/${wrongName}`)).toEqual(["record_mismatch"]);
      expect(result.skipped).toContainEqual(expect.objectContaining({ taskId: elsewhere.id, reason: "other_host" }));
      expect(removedIds(result)).not.toContain(elsewhere.id);
    }
    for (const d of ["not-berth", "task-123-bad", orphan, corruptWs, wrongName, path.basename(elsewhere.ws)])
      expect(await present(wsOf(d))).toBe(true);
    expect((await h.get(elsewhere.id)).status).toBe("succeeded");
  });
});

describe("passes", () => {
  it("a dry run removes nothing and reports exactly what the real pass then removes", async () => {
    const due = await Promise.all([1, 2, 3].map(() => fakeTask({ expiresAtMs: Date.now() - 1000 })));
    const notDue = await fakeTask({ expiresAtMs: Date.now() + DAY });
    const orphan = `task-1000000000000-${newTaskId()}`;
    await mkdir(path.join(wsOf(orphan), "x"), { recursive: true });
    const old = new Date(Date.now() - 60 * DAY);
    await utimes(wsOf(orphan), old, old); // an orphan is judged by the younger of its name's time and its mtime
    const opts = { orphans: true, olderThanMs: 30 * DAY, now: Date.now() };
    const dry = await sweep(h.deps, h.services, { ...opts, dryRun: true });
    expect(dry.dryRun).toBe(true);
    for (const f of [...due, notDue]) {
      expect(await present(f.ws)).toBe(true);
      expect(await present(f.ar)).toBe(true);
      expect((await h.get(f.id)).status).toBe("succeeded");
    }
    expect(await present(wsOf(orphan))).toBe(true);
    const real = await sweep(h.deps, h.services, opts);
    const key = (r: SweepResult) =>
      r.removed.map((x) => ({ ...x, files: [...x.files].sort() })).sort((a, b) => a.workspace.localeCompare(b.workspace));
    expect(key(real)).toEqual(key(dry));
    expect(real.purged.sort()).toEqual(dry.purged.sort());
    expect(real.bytesReclaimed).toBe(dry.bytesReclaimed);
    expect(removedIds(real)).toEqual(expect.arrayContaining(due.map((f) => f.id)));
    expect(removedIds(real)).not.toContain(notDue.id);
    expect(real.removed.map((r) => r.workspace)).toContain(orphan);
    for (const f of due) expect(await present(f.ws)).toBe(false);
    expect(await present(notDue.ws)).toBe(true);
  });

  it("two passes at once remove each item exactly once", async () => {
    // More tasks than one chunk of a pass, so that the two passes' chunks interleave.
    const due = await Promise.all(Array.from({ length: 300 }, () => fakeTask({ expiresAtMs: Date.now() - 1000 })));
    const [a, b] = await Promise.all([sweep(h.deps, h.services), sweep(h.deps, h.services)]);
    expect([...a.errors, ...b.errors]).toEqual([]);
    const all = [...removedIds(a), ...removedIds(b)].filter((id) => due.some((f) => f.id === id));
    expect(all.sort()).toEqual(due.map((f) => f.id).sort());
    for (const f of due) {
      expect(await present(f.ws)).toBe(false);
      expect((await h.get(f.id)).status).toBe("expired");
    }
  });

  it("a task whose files cannot be removed fails alone in a big pass: the others expire, it keeps its record for the next pass", async () => {
    const due = await Promise.all(Array.from({ length: 300 }, () => fakeTask({ expiresAtMs: Date.now() - 1000 })));
    const bad = due[200] as (typeof due)[number];
    await immutable(path.join(bad.ws, "sub", "f3"), true);
    let result: SweepResult;
    try {
      result = await sweep(h.deps, h.services);
      expect(await present(bad.ws)).toBe(true);
    } finally {
      await immutable(path.join(bad.ws, "sub", "f3"), false);
    }
    expect(result.errors).toEqual([
      expect.objectContaining({ item: bad.workspace, taskId: bad.id, message: expect.stringMatching(/Operation not permitted/) }),
    ]);
    expect(removedIds(result)).toEqual(expect.arrayContaining(due.filter((f) => f !== bad).map((f) => f.id)));
    expect(removedIds(result)).not.toContain(bad.id);
    expect((await h.get(bad.id)).status).toBe("succeeded");
    for (const f of due.filter((x) => x !== bad)) {
      expect(await present(f.ws)).toBe(false);
      expect(await present(f.ar)).toBe(false);
      expect((await h.get(f.id)).status).toBe("expired");
    }
    const next = await sweep(h.deps, h.services);
    expect(next.errors).toEqual([]);
    expect(removedIds(next)).toContain(bad.id);
    expect(await present(bad.ws)).toBe(false);
    expect((await h.get(bad.id)).status).toBe("expired");
  }, 120_000);

  it("a task whose lock another cleanup holds is skipped and its lock left alone; the tasks around it go ahead", async () => {
    const due = await Promise.all(Array.from({ length: 5 }, () => fakeTask({ expiresAtMs: Date.now() - 1000 })));
    const held = due[2] as (typeof due)[number];
    const lockKey = h.services.keys.cleanupLock(held.id);
    await h.deps.redis.set(lockKey, "someone-else", "PX", 60_000);
    try {
      const result = await sweep(h.deps, h.services);
      expect(result.errors).toEqual([]);
      expect(result.skipped).toContainEqual(expect.objectContaining({ taskId: held.id, reason: "locked" }));
      expect(removedIds(result)).toEqual(expect.arrayContaining(due.filter((f) => f !== held).map((f) => f.id)));
      expect(removedIds(result)).not.toContain(held.id);
      expect(await h.deps.redis.get(lockKey)).toBe("someone-else");
      expect(await present(held.ws)).toBe(true);
      expect((await h.get(held.id)).status).toBe("succeeded");
      for (const f of due.filter((x) => x !== held)) expect((await h.get(f.id)).status).toBe("expired");
      // The locks this pass took are released: nothing of it is left in Redis.
      for (const f of due.filter((x) => x !== held)) expect(await h.deps.redis.exists(h.services.keys.cleanupLock(f.id))).toBe(0);
    } finally {
      await h.deps.redis.del(lockKey);
    }
    const next = await sweep(h.deps, h.services);
    expect(removedIds(next)).toContain(held.id);
    expect(await present(held.ws)).toBe(false);
  });

  it("with a disk budget, expires the oldest finished tasks first until under it", async () => {
    // Finished in 2001, so they are older than anything else here; 1 MiB files make the sizes clear.
    const base = 1_000_000_000_000;
    const tasks = [];
    for (let i = 0; i < 4; i++)
      tasks.push(
        await fakeTask({
          createdAtMs: base + i * 1000,
          finishedAtMs: base + i * 1000 + 1,
          expiresAtMs: Date.now() + DAY,
          fileBytes: 1 << 20,
        }),
      );
    const entries = await listLocalEntries(h.deps.config.dirs);
    const sizes = await diskUsage(entries.flatMap((e) => (e.path ? [e.path] : [])));
    const used = [...sizes.values()].reduce((x, y) => x + y, 0);
    const sizeOf = (f: { ws: string; ar: string }) => (sizes.get(f.ws) ?? 0) + (sizes.get(f.ar) ?? 0);
    const [t0, t1, t2, t3] = tasks as [(typeof tasks)[number], (typeof tasks)[number], (typeof tasks)[number], (typeof tasks)[number]];
    const budget = used - sizeOf(t0) - Math.floor(sizeOf(t1) / 2);
    const deps: Deps = { ...h.deps, config: { ...h.deps.config, diskBudgetBytes: budget } };

    const result = await sweep(deps, h.services);
    expect(result.errors).toEqual([]);
    expect(result.removed.filter((r) => r.why === "disk_budget").map((r) => r.taskId)).toEqual([t0.id, t1.id]);
    expect(result.disk).toMatchObject({ budgetBytes: budget, usedBytes: used });
    expect(result.disk?.projectedBytes).toBeLessThanOrEqual(budget);
    for (const f of [t0, t1]) expect((await h.get(f.id)).status).toBe("expired");
    for (const f of [t2, t3]) {
      expect((await h.get(f.id)).status).toBe("succeeded");
      expect(await present(f.ws)).toBe(true);
    }
  });
});

describe("with archives in an S3-compatible store", () => {
  let s3: S3Store;
  let hs3: Harness;
  let bucket: string;
  const keyOf = (workspace: string) => `archives/${workspace}.tar.gz`;
  const stored = async (workspace: string) => (await s3.keys(bucket, keyOf(workspace))).length === 1;

  beforeAll(async () => {
    s3 = await startS3();
    const b = await s3.bucket("archives");
    bucket = b.bucket;
    hs3 = await startHarness({ ...b.env, BERTH_CONCURRENCY: "2" });
  }, 300_000);
  afterAll(async () => {
    await hs3?.close();
    await s3?.stop();
  });

  const done = async (script: string, extra: Record<string, unknown> = {}) => {
    const t = await hs3.waitFinished((await hs3.submit(sh(script, extra))).id, 90_000);
    expect(t.status).toBe("succeeded");
    expect(await stored(t.workspace)).toBe(true);
    return t;
  };

  it("expiry deletes the task's object and reports it; the archive then answers 410", async () => {
    const t = await done("echo hello > out.txt", { ttlSeconds: 1 });
    await waitFor(
      "the ttl to run out",
      async () => Date.now(),
      (now) => now > Date.parse(t.expiresAt ?? "") + 10,
    );
    const result = await sweep(hs3.deps, hs3.services);
    expect(result.errors).toEqual([]);
    expect(result.removed.find((r) => r.taskId === t.id)).toMatchObject({
      why: "ttl",
      files: [path.join(hs3.deps.config.dirs.workspaces, t.workspace), `s3://${bucket}/${keyOf(t.workspace)}`],
    });
    expect(await stored(t.workspace)).toBe(false);
    expect(await present(path.join(hs3.deps.config.dirs.workspaces, t.workspace))).toBe(false);
    expect((await hs3.request("GET", `/v1/tasks/${t.id}/archive`)).statusCode).toBe(410);
  }, 120_000);

  it("DELETE deletes the task's object", async () => {
    const t = await done("echo bye > out.txt");
    expect((await hs3.request("DELETE", `/v1/tasks/${t.id}`)).statusCode).toBe(204);
    expect(await stored(t.workspace)).toBe(false);
    expect((await hs3.request("GET", `/v1/tasks/${t.id}`)).statusCode).toBe(404);
  }, 120_000);

  it("any host expires another host's due task (object, logs, record); its own host then removes its workspace", async () => {
    const t = await done("echo elsewhere > out.txt", { ttlSeconds: 1 });
    // The task ran on another host: its workspace is on that host's disk (a directory of its own here), not this one's.
    const otherDisk = path.join(hs3.root, "gone-host-workspaces");
    await mkdir(otherDisk);
    const ws = path.join(otherDisk, t.workspace);
    // Copied, not renamed: the workspace root is a mount of its own (src/workspace/mount.ts).
    await execa("cp", ["-a", "--", path.join(hs3.deps.config.dirs.workspaces, t.workspace), ws]);
    await removeTrees([path.join(hs3.deps.config.dirs.workspaces, t.workspace)]);
    await hs3.services.store.patch(t.id, { host: "gone-host" });
    await waitFor(
      "the ttl to run out",
      async () => Date.now(),
      (now) => now > Date.parse(t.expiresAt ?? "") + 10,
    );
    const here = await sweep(hs3.deps, hs3.services);
    expect(here.errors).toEqual([]);
    expect(here.removed.find((r) => r.taskId === t.id)).toMatchObject({ why: "ttl", files: [`s3://${bucket}/${keyOf(t.workspace)}`] });
    expect(await stored(t.workspace)).toBe(false);
    expect((await hs3.get(t.id)).status).toBe("expired");
    expect(await hs3.deps.redis.exists(hs3.services.keys.logs(t.id))).toBe(0);
    expect(await present(ws)).toBe(true); // not this host's to remove
    const owner: Deps = {
      ...hs3.deps,
      host: "gone-host",
      config: { ...hs3.deps.config, dirs: { ...hs3.deps.config.dirs, workspaces: otherDisk } },
    };
    const there = await sweep(owner, hs3.services);
    expect(there.removed.find((r) => r.taskId === t.id)).toMatchObject({ why: "leftover" });
    expect(await present(ws)).toBe(false);
  }, 120_000);

  it("the disk budget expires the oldest finished tasks and deletes their objects", async () => {
    const tasks = [];
    for (let i = 0; i < 3; i++) tasks.push(await done("head -c 1048576 /dev/urandom > r.bin"));
    // Finished in 2001, so they are the oldest here.
    for (const [i, t] of tasks.entries()) await hs3.services.store.patch(t.id, { finishedAtMs: 1_000_000_000_000 + i * 1000 });
    const [t0, t1, t2] = tasks as [TaskView, TaskView, TaskView];
    const wsOf3 = (t: TaskView) => path.join(hs3.deps.config.dirs.workspaces, t.workspace);
    const entries = await listLocalEntries(hs3.deps.config.dirs);
    const sizes = await diskUsage(entries.flatMap((e) => (e.path ? [e.path] : [])));
    const used = [...sizes.values()].reduce((x, y) => x + y, 0);
    // The budget counts this host's disk: with an object store, the workspaces.
    const budget = used - (sizes.get(wsOf3(t0)) ?? 0) - Math.floor((sizes.get(wsOf3(t1)) ?? 0) / 2);
    const result = await sweep({ ...hs3.deps, config: { ...hs3.deps.config, diskBudgetBytes: budget } }, hs3.services);
    expect(result.errors).toEqual([]);
    expect(result.removed.filter((r) => r.why === "disk_budget").map((r) => r.taskId)).toEqual([t0.id, t1.id]);
    expect([await stored(t0.workspace), await stored(t1.workspace), await stored(t2.workspace)]).toEqual([false, false, true]);
    expect((await hs3.get(t2.id)).status).toBe("succeeded");
  }, 180_000);

  it("aborts multipart uploads left unfinished, once they are older than an archive may take", async () => {
    const key = keyOf(`task-1700000000000-${newTaskId()}`);
    await s3.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    expect(await s3.uploads(bucket)).toEqual([key]);
    expect((await sweep(hs3.deps, hs3.services)).uploadsAborted).toBe(0);
    expect(await s3.uploads(bucket)).toEqual([key]);
    const later = Date.now() + hs3.deps.config.worker.archiveTimeoutSeconds * 1000 + 11 * 60_000;
    expect((await sweep(hs3.deps, hs3.services, { now: later })).uploadsAborted).toBe(1);
    expect(await s3.uploads(bucket)).toEqual([]);
  }, 120_000);
});
