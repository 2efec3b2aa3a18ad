// The cleanup planner (src/cleanup/sweep-plan.ts) on its own: every safety rule, from entries and records made
// here. What it plans is what a pass then locks, re-checks and removes (test/integration/cleanup.test.ts).
import type { DiskEntry } from "../../src/cleanup/disk-usage.js";
import {
  DEFAULT_ORPHAN_AGE_MS,
  expiredFields,
  fitBudget,
  type PlanInput,
  pathsToMeasure,
  planSweep,
  RECORD_RETENTION_MS,
  recheck,
  refuseByHand,
  type Removal,
  STALE_TEMP_MS,
  type SweepPlan,
} from "../../src/cleanup/sweep-plan.js";
import type { TaskStatus } from "../../src/contract/types.js";
import type { TaskRecord } from "../../src/domain/task.js";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);
const HOST = "here";
let serial = 0;

/** A task made `daysAgo` days before NOW; its workspace name carries that time, as berth names it. */
function task(status: TaskStatus, fields: Partial<TaskRecord> = {}, daysAgo = 10): TaskRecord {
  const id = `task${String(++serial).padStart(8, "0")}`;
  const createdAtMs = NOW - daysAgo * DAY;
  const finished = status === "queued" || status === "running" ? null : createdAtMs + 1000;
  return {
    id,
    tenant: "acme",
    workspace: `task-${createdAtMs}-${id}`,
    status,
    image: "berth-runner:latest",
    command: ["true"],
    labels: {},
    createdAtMs,
    startedAtMs: createdAtMs,
    finishedAtMs: finished,
    expiresAtMs: finished === null ? null : finished + DAY,
    exitCode: finished === null ? null : 0,
    reason: null,
    message: null,
    timeoutSeconds: 60,
    limits: { memoryMb: 512, cpus: 1, pids: 256, diskMb: 1024 },
    network: "none",
    ttlSeconds: 86_400,
    archive: finished === null ? null : { bytes: 100, sha256: "0".repeat(64) },
    archiveSkipped: [],
    workspaceBytes: finished === null ? null : 900,
    outputTruncated: false,
    cancelRequested: false,
    host: HOST,
    ...fields,
  };
}

/** The workspace directory and archive a task (or a record-less name) has on disk. */
function filesOf(workspace: string, opts: { mtimeMs?: number; only?: "workspace" | "archive" } = {}): DiskEntry[] {
  const m = /^task-(\d{13})-(.+)$/.exec(workspace);
  const base = { workspace, taskId: m?.[2] ?? null, createdAtMs: Number(m?.[1]), mtimeMs: opts.mtimeMs ?? NOW - DAY };
  const out: DiskEntry[] = [];
  if (opts.only !== "archive")
    out.push({ ...base, root: "workspaces", kind: "workspace", name: workspace, path: `/srv/ws/${workspace}`, type: "dir" });
  if (opts.only !== "workspace")
    out.push({
      ...base,
      root: "archives",
      kind: "archive",
      name: `${workspace}.tar.gz`,
      path: `/srv/ar/${workspace}.tar.gz`,
      type: "file",
    });
  return out;
}

function other(root: DiskEntry["root"], name: string, kind: "foreign" | "temp", mtimeMs = NOW): DiskEntry {
  const dir = root === "workspaces" ? "/srv/ws" : "/srv/ar";
  return { root, kind, name, path: `${dir}/${name}`, workspace: null, taskId: null, createdAtMs: null, type: "dir", mtimeMs };
}

/** Plans a pass over `records` (each with its files on disk unless listed in `noFiles`) plus `extra` entries. */
function plan(opts: {
  records?: TaskRecord[];
  noFiles?: TaskRecord[];
  extra?: DiskEntry[];
  due?: string[];
  loaded?: [string, TaskRecord | null | Error][];
  options?: PlanInput["options"];
  sharedArchives?: boolean;
}): SweepPlan {
  const records = opts.records ?? [];
  const entries = [...records.filter((r) => !opts.noFiles?.includes(r)).flatMap((r) => filesOf(r.workspace)), ...(opts.extra ?? [])];
  const loaded = new Map<string, TaskRecord | null | Error>(records.map((r) => [r.id, r]));
  for (const [id, r] of opts.loaded ?? []) loaded.set(id, r);
  for (const e of entries) if (e.taskId && !loaded.has(e.taskId)) loaded.set(e.taskId, null);
  for (const id of opts.due ?? []) if (!loaded.has(id)) loaded.set(id, null);
  return planSweep({
    now: NOW,
    host: HOST,
    sharedArchives: opts.sharedArchives ?? false,
    entries,
    due: opts.due ?? [],
    records: loaded,
    options: opts.options ?? {},
  });
}

const removed = (p: SweepPlan) => p.removals.map((r) => [r.id, r.why]);
const skipped = (p: SweepPlan) => p.skips.map((s) => [s.item, s.reason]);

describe("planSweep: what is never removed", () => {
  // The most permissive pass an operator can ask for: everything finished counts as old enough.
  const everything = { all: true, orphans: true, olderThanMs: 0 };

  it("never a queued or running task, whatever its expiry says, and says so when it was due", () => {
    const queued = task("queued", { expiresAtMs: NOW - 30 * DAY });
    const running = task("running", { expiresAtMs: NOW - 30 * DAY });
    const p = plan({ records: [queued, running], due: [queued.id, running.id], options: everything });
    expect(p.removals).toEqual([]);
    expect(p.budgetCandidates).toEqual([]);
    expect(p.skips).toEqual([
      {
        item: `workspaces/${queued.workspace}`,
        taskId: queued.id,
        reason: "active",
        detail: "task is queued; never touched until it has ended",
      },
      {
        item: `workspaces/${running.workspace}`,
        taskId: running.id,
        reason: "active",
        detail: "task is running; never touched until it has ended",
      },
    ]);
    expect(p.indexFixes).toEqual([]);
  });

  it("never an entry whose name berth does not make, nor a temp file a crash left", () => {
    const p = plan({
      extra: [
        other("workspaces", "not-berth", "foreign"),
        other("workspaces", "task-\\xff\\xfe", "foreign"),
        other("archives", "random.tar.gz", "foreign"),
        other("archives", ".task-x.tar.gz.tmp-0123456789abcdef", "temp", NOW - STALE_TEMP_MS - 1),
        other("archives", ".task-y.tar.gz.tmp-0123456789abcdef", "temp", NOW - 1000),
      ],
      options: everything,
    });
    expect(p.removals).toEqual([]);
    expect(skipped(p)).toEqual([
      ["workspaces/not-berth", "foreign_name"],
      ["workspaces/task-\\xff\\xfe", "foreign_name"],
      ["archives/random.tar.gz", "foreign_name"],
      ["archives/.task-x.tar.gz.tmp-0123456789abcdef", "stale_temp"],
    ]); // an archive still being written is neither removed nor reported
  });

  it("leaves another host's task to that host, due or not, expired or not", () => {
    const due = task("succeeded", { host: "there", expiresAtMs: NOW - DAY });
    const leftover = task("expired", { host: "there", expiresAtMs: NOW - DAY });
    const dueElsewhere = task("failed", { host: "there", expiresAtMs: NOW - DAY });
    const p = plan({
      records: [due, leftover, dueElsewhere],
      noFiles: [dueElsewhere],
      due: [due.id, dueElsewhere.id],
      options: everything,
    });
    expect(p.removals).toEqual([]);
    expect(p.budgetCandidates).toEqual([]);
    expect(skipped(p)).toEqual([
      [`workspaces/${due.workspace}`, "other_host"],
      [`task ${dueElsewhere.id}`, "other_host"],
      [`workspaces/${leftover.workspace}`, "other_host"],
    ]);
    expect(p.skips[0]).toMatchObject({ detail: "task ran on there; that host cleans it" });
  });

  it("with an archive store all hosts share, expires another host's due task here, and leaves it everything else", () => {
    const due = task("succeeded", { host: "there", expiresAtMs: NOW - DAY });
    const notDue = task("failed", { host: "there", expiresAtMs: NOW + DAY });
    const leftover = task("expired", { host: "there", expiresAtMs: NOW - DAY });
    const withFilesHere = task("succeeded", { host: "there", expiresAtMs: NOW - DAY });
    const p = plan({
      records: [due, notDue, leftover, withFilesHere],
      noFiles: [due, notDue],
      due: [due.id, notDue.id, withFilesHere.id],
      options: everything,
      sharedArchives: true,
    });
    // Its archive object, log stream and record: nothing of it is on this disk.
    expect(p.removals).toEqual([{ id: due.id, workspace: due.workspace, record: due, why: "ttl", files: [], bytes: 0 }]);
    expect(skipped(p)).toEqual([
      [`task ${notDue.id}`, "other_host"],
      [`workspaces/${withFilesHere.workspace}`, "other_host"],
      [`workspaces/${leftover.workspace}`, "other_host"],
    ]);
    const planned = p.removals[0] as (typeof p.removals)[number];
    expect(recheck(planned, due, HOST)).toBeNull();
    expect(recheck(planned, { ...due, host: "elsewhere" }, HOST)).toMatchObject({ reason: "changed" });
    expect(recheck(planned, { ...due, status: "expired" }, HOST)).toMatchObject({ reason: "changed" });
  });

  it("skips a task whose record cannot be read or does not fit, even when asked for record-less entries", () => {
    const unreadable = task("succeeded", { expiresAtMs: NOW - DAY });
    const wrongId = task("succeeded", { expiresAtMs: NOW - DAY });
    const badWorkspace = task("succeeded", { expiresAtMs: NOW - DAY });
    const p = plan({
      records: [unreadable, wrongId, badWorkspace],
      due: [unreadable.id],
      loaded: [
        [unreadable.id, new Error("Unexpected token n in JSON")],
        [wrongId.id, { ...wrongId, id: "someone-else" }],
        [badWorkspace.id, { ...badWorkspace, workspace: "../../etc" }],
      ],
      options: everything,
    });
    expect(p.removals).toEqual([]);
    expect(p.skips.map((s) => [s.taskId, s.reason, s.detail])).toEqual([
      [unreadable.id, "corrupt_record", "the task record cannot be read (Unexpected token n in JSON); left alone"],
      [wrongId.id, "corrupt_record", "the task record cannot be read (damaged record); left alone"],
      [badWorkspace.id, "corrupt_record", "the task record cannot be read (damaged record); left alone"],
    ]);
    expect(p.indexFixes).toEqual([]); // an unreadable record's index entry is left as it is too
  });

  it("leaves files whose name differs from the workspace their task's record names", () => {
    const t = task("succeeded", { expiresAtMs: NOW - DAY });
    const stray = `task-1600000000000-${t.id}`;
    const p = plan({ records: [t], extra: filesOf(stray, { only: "workspace" }), due: [t.id] });
    expect(removed(p)).toEqual([[t.id, "ttl"]]);
    expect(p.removals[0]?.files).toEqual([`/srv/ws/${t.workspace}`, `/srv/ar/${t.workspace}.tar.gz`]);
    expect(p.skips).toEqual([
      {
        item: `workspaces/${stray}`,
        taskId: t.id,
        reason: "record_mismatch",
        detail: `the record of task ${t.id} names workspace ${t.workspace}; left alone`,
      },
    ]);
  });
});

describe("planSweep: entries without a record", () => {
  const orphan = (daysAgo: number) => `task-${NOW - daysAgo * DAY}-orphan${String(++serial).padStart(6, "0")}`;
  const entriesOf = (ws: string, mtimeDaysAgo: number) => filesOf(ws, { mtimeMs: NOW - mtimeDaysAgo * DAY });

  it("are reported and kept unless the operator asked for them", () => {
    const ws = orphan(400);
    const p = plan({ extra: entriesOf(ws, 400) });
    expect(p.removals).toEqual([]);
    expect(skipped(p)).toEqual([
      [`workspaces/${ws}`, "no_record"],
      [`archives/${ws}.tar.gz`, "no_record"],
    ]);
    expect(p.skips[0]?.detail).toMatch(/^no task record .*`berth workspace clean --orphans \[--older-than-days N\]` removes such entries$/);
  });

  it("with `orphans`, go once old enough, judged by the younger of the name's time and the entry's mtime", () => {
    const old = orphan(30);
    const touched = orphan(30); // an old name, but written to yesterday
    const p = plan({ extra: [...entriesOf(old, 30), ...entriesOf(touched, 1)], options: { orphans: true } });
    expect(p.removals).toEqual([
      {
        id: old.slice(-12),
        workspace: old,
        record: null,
        why: "orphan",
        files: [`/srv/ws/${old}`, `/srv/ar/${old}.tar.gz`],
        bytes: 0,
      },
    ]);
    expect(skipped(p)).toEqual([
      [`workspaces/${touched}`, "no_record"],
      [`archives/${touched}.tar.gz`, "no_record"],
    ]);
    expect(p.skips[0]?.detail).toBe(`no task record, but younger than ${DEFAULT_ORPHAN_AGE_MS / DAY} days; left alone`);
  });

  it("with `orphans` and an age, use that age instead of the default", () => {
    const ws = orphan(3);
    expect(removed(plan({ extra: entriesOf(ws, 3), options: { orphans: true } }))).toEqual([]);
    expect(removed(plan({ extra: entriesOf(ws, 3), options: { orphans: true, olderThanMs: 2 * DAY } }))).toEqual([
      [ws.slice(-12), "orphan"],
    ]);
  });

  it("are never removed by `all` alone, however old: `all` is about finished tasks", () => {
    const ws = orphan(400);
    const p = plan({ extra: entriesOf(ws, 400), options: { all: true, olderThanMs: 0 } });
    expect(p.removals).toEqual([]);
    expect(skipped(p)).toEqual([
      [`workspaces/${ws}`, "no_record"],
      [`archives/${ws}.tar.gz`, "no_record"],
    ]);
    expect(p.skips[0]?.detail).toContain("`berth workspace clean --orphans [--older-than-days N]` removes such entries");
  });

  it("drop the expiry index entry of a task that no longer exists", () => {
    const p = plan({ due: ["deleted-task-id"] });
    expect(p.indexFixes).toEqual([{ id: "deleted-task-id", score: null }]);
    expect(p.skips).toEqual([]);
  });
});

describe("planSweep: finished tasks", () => {
  it("expires a task whose ttl ran out, and one that finished longer ago than the operator's age", () => {
    const due = task("failed", { expiresAtMs: NOW - 1 });
    const exactly = task("succeeded", { expiresAtMs: NOW });
    const old = task("timed_out", { finishedAtMs: NOW - 5 * DAY, expiresAtMs: NOW + DAY });
    const young = task("canceled", { finishedAtMs: NOW - DAY, expiresAtMs: NOW + DAY });
    const p = plan({ records: [due, exactly, old, young], due: [due.id, exactly.id], options: { olderThanMs: 2 * DAY } });
    expect(removed(p)).toEqual([
      [due.id, "ttl"],
      [exactly.id, "ttl"],
      [old.id, "older_than"],
    ]);
    expect(p.budgetCandidates.map((r) => r.id)).toEqual([young.id]);
  });

  it("with `all`, expires every finished task whatever its age, its ttl first; never a queued or running one", () => {
    const due = task("failed", { expiresAtMs: NOW - 1 });
    const justNow = task("succeeded", { finishedAtMs: NOW, expiresAtMs: NOW + 30 * DAY }, 0);
    const older = task("canceled", { finishedAtMs: NOW - DAY, expiresAtMs: NOW + DAY }, 1);
    const queued = task("queued");
    const running = task("running", { expiresAtMs: NOW - DAY });
    const expired = task("expired", { expiresAtMs: NOW - DAY });
    const p = plan({
      records: [due, justNow, older, queued, running, expired],
      noFiles: [expired],
      due: [due.id, running.id],
      options: { all: true },
    });
    expect(removed(p)).toEqual([
      [due.id, "ttl"],
      [justNow.id, "all"],
      [older.id, "all"],
    ]);
    expect(p.removals.map((r) => r.workspace)).toEqual([due.workspace, justNow.workspace, older.workspace]);
    expect(skipped(p)).toEqual([[`workspaces/${running.workspace}`, "active"]]);
    expect(p.budgetCandidates).toEqual([]);
    // The same with the age given as 0, as `--all` reads: every finished task is at least 0 ms old.
    const asAge = plan({ records: [justNow, older, queued, running], options: { olderThanMs: 0 } });
    expect(removed(asAge).map(([id]) => id)).toEqual([justNow.id, older.id]);
  });

  it("without an expiresAt, counts the ttl from the finish", () => {
    const t = task("succeeded", { expiresAtMs: null, finishedAtMs: NOW - 2000, ttlSeconds: 1 });
    expect(removed(plan({ records: [t] }))).toEqual([[t.id, "ttl"]]);
  });

  it("expires a due task without files here all the same (its record and logs still go)", () => {
    const t = task("succeeded", { expiresAtMs: NOW - DAY });
    const p = plan({ records: [t], noFiles: [t], due: [t.id] });
    expect(p.removals).toEqual([{ id: t.id, workspace: t.workspace, record: t, why: "ttl", files: [], bytes: 0 }]);
  });

  it("repairs an index entry that is due but whose record says later, and keeps the task", () => {
    const t = task("succeeded", { expiresAtMs: NOW + DAY });
    const p = plan({ records: [t], due: [t.id] });
    expect(p.removals).toEqual([]);
    expect(p.indexFixes).toEqual([{ id: t.id, score: NOW + DAY }]);
  });

  it("finishes an interrupted removal: an expired task's files left on disk go as a leftover", () => {
    const t = task("expired", { expiresAtMs: NOW - DAY });
    expect(removed(plan({ records: [t] }))).toEqual([[t.id, "leftover"]]);
  });

  it("purges an expired record once its retention is over, and reschedules one that is due too early", () => {
    const over = task("expired", { expiresAtMs: NOW - RECORD_RETENTION_MS });
    const early = task("expired", { expiresAtMs: NOW - DAY });
    const p = plan({ records: [over, early], noFiles: [over, early], due: [over.id, early.id] });
    expect(p.purges).toEqual([over.id]);
    expect(p.removals).toEqual([]);
    expect(p.indexFixes).toEqual([{ id: early.id, score: NOW - DAY + RECORD_RETENTION_MS }]);
  });
});

describe("dry run", () => {
  it("gets exactly the plan of a real run", () => {
    const records = [task("succeeded", { expiresAtMs: NOW - DAY }), task("running"), task("expired", { expiresAtMs: NOW - 8 * DAY })];
    const extra = [...filesOf(`task-${NOW - 30 * DAY}-orphan000001`), other("workspaces", "x", "foreign")];
    const args = { records, extra, due: records.map((r) => r.id), options: { all: true, orphans: true, olderThanMs: DAY } };
    expect(plan({ ...args, options: { ...args.options, dryRun: true } })).toEqual(plan(args));
  });
});

describe("fitBudget and pathsToMeasure", () => {
  // Finished 4, 3, 2 and 1 days ago; none due.
  const candidates = [4, 3, 2, 1].map((d) => task("succeeded", { finishedAtMs: NOW - d * DAY, expiresAtMs: NOW + DAY }, d));
  const sizes = new Map(candidates.flatMap((t) => filesOf(t.workspace).map((e): [string, number] => [e.path as string, 500])));

  it("with a budget, measures everything and expires the oldest finished first until under it", () => {
    const p = plan({ records: [...candidates].reverse() });
    const entries = candidates.flatMap((t) => filesOf(t.workspace));
    expect(pathsToMeasure(p, entries, 3000).sort()).toEqual([...sizes.keys()].sort());
    // 4 tasks × 1000 bytes = 4000; a budget of 2500 takes the two oldest.
    const { removals, disk } = fitBudget(p, sizes, 2500);
    expect(removals.map((r) => [r.id, r.why, r.bytes])).toEqual([
      [candidates[0]?.id, "disk_budget", 1000],
      [candidates[1]?.id, "disk_budget", 1000],
    ]);
    expect(disk).toEqual({ budgetBytes: 2500, usedBytes: 4000, projectedBytes: 2000 });
  });

  it("counts what expires anyway before taking budget candidates", () => {
    const due = task("succeeded", { expiresAtMs: NOW - 1 }, 0.5);
    const all = new Map([...sizes, ...filesOf(due.workspace).map((e): [string, number] => [e.path as string, 1500])]);
    const { removals, disk } = fitBudget(plan({ records: [due, ...candidates] }), all, 2500);
    expect(removals.map((r) => [r.id, r.why])).toEqual([
      [due.id, "ttl"],
      [candidates[0]?.id, "disk_budget"],
      [candidates[1]?.id, "disk_budget"],
    ]);
    expect(disk?.projectedBytes).toBe(2000);
  });

  it("takes nothing more when already under the budget, and breaks ties between equally old tasks by id", () => {
    expect(fitBudget(plan({ records: candidates }), sizes, 4000).removals).toEqual([]);
    const a = task("succeeded", { finishedAtMs: NOW - DAY, expiresAtMs: NOW + DAY }, 1);
    const b = task("succeeded", { finishedAtMs: NOW - DAY, expiresAtMs: NOW + DAY }, 1);
    const twins = new Map([a, b].flatMap((t) => filesOf(t.workspace).map((e): [string, number] => [e.path as string, 500])));
    const [first] = fitBudget(plan({ records: [b, a] }), twins, 1500).removals;
    expect(first?.id).toBe([a.id, b.id].sort()[0]);
  });

  it("without a budget, measures only what goes and whose size its record does not tell", () => {
    const known = task("succeeded", { expiresAtMs: NOW - 1, workspaceBytes: 900, archive: { bytes: 100, sha256: "0".repeat(64) } });
    const unknown = task("failed", { expiresAtMs: NOW - 1, workspaceBytes: null, archive: null });
    const p = plan({ records: [known, unknown, ...candidates] });
    expect(pathsToMeasure(p, [], 0)).toEqual([`/srv/ws/${unknown.workspace}`, `/srv/ar/${unknown.workspace}.tar.gz`]);
    const { removals, disk } = fitBudget(p, new Map([[`/srv/ws/${unknown.workspace}`, 4096]]), 0);
    expect(removals.map((r) => [r.id, r.bytes])).toEqual([
      [known.id, 1000],
      [unknown.id, 4096],
    ]);
    expect(disk).toBeNull();
  });
});

describe("under the lock and by hand", () => {
  const planned = (r: TaskRecord, why: Removal["why"] = "ttl"): Removal => ({
    id: r.id,
    workspace: r.workspace,
    record: r,
    why,
    files: [],
    bytes: 0,
  });

  it("recheck lets a removal go ahead only if its task is still as planned", () => {
    const t = task("succeeded");
    expect(recheck(planned(t), t, HOST)).toBeNull();
    expect(recheck(planned(t), null, HOST)).toEqual({ reason: "changed", detail: "task is now gone; nothing to do" });
    expect(recheck(planned(t), { ...t, status: "expired" }, HOST)).toMatchObject({ detail: "task is now expired; nothing to do" });
    expect(recheck(planned(t), { ...t, host: "there" }, HOST)).toMatchObject({ reason: "changed" });
    expect(recheck(planned(t), { ...t, workspace: `task-1600000000000-${t.id}` }, HOST)).toMatchObject({ reason: "changed" });
    const leftover = task("expired");
    expect(recheck(planned(leftover, "leftover"), leftover, HOST)).toBeNull();
    expect(recheck(planned(leftover, "leftover"), { ...leftover, status: "succeeded" }, HOST)).toMatchObject({ reason: "changed" });
  });

  it("refuseByHand refuses queued and running tasks and another host's, and allows the rest", () => {
    expect(refuseByHand(task("running"), HOST)).toEqual({ reason: "active", detail: "task is running; cancel it first" });
    expect(refuseByHand(task("queued"), HOST)).toMatchObject({ reason: "active" });
    expect(refuseByHand(task("failed", { host: "there" }), HOST)).toEqual({
      reason: "other_host",
      detail: "task ran on there; run this there",
    });
    expect(refuseByHand(task("failed"), HOST)).toBeNull();
    expect(refuseByHand(task("expired", { host: null }), HOST)).toBeNull();
  });

  it("expiredFields empties the archive, keeps the ttl's expiry, and shortens a huge command", () => {
    const t = task("failed", { exitCode: 3, expiresAtMs: NOW - DAY, command: Array.from({ length: 40 }, () => "x".repeat(200)) });
    const f = expiredFields(t, "ttl", NOW);
    expect(f).toMatchObject({ status: "expired", expiresAtMs: NOW - DAY, archive: null, archiveSkipped: [] });
    expect(f.message).toBe("Ended failed with exit code 3; workspace, archive and logs removed by cleanup (ttl); command shortened.");
    expect(f.command).toHaveLength(16);
    expect(f.command?.[0]).toBe(`${"x".repeat(128)}…`);
    const g = expiredFields(task("canceled", { exitCode: null }), "disk_budget", NOW);
    expect(g).toMatchObject({ expiresAtMs: NOW, message: "Ended canceled; workspace, archive and logs removed by cleanup (disk budget)." });
    expect(g).not.toHaveProperty("command");
  });
});
