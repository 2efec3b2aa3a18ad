// What one cleanup pass should do, decided from what it found: the entries of this host's roots, the ids the
// expiry index says are due, and the task records. Pure: no I/O, no clock, no randomness; a dry run and a real run
// get the same plan, because this module is never told which one it is planning for.
//
// Safety rules, in the order they are applied:
// - Only entries named as berth names them are considered (disk-usage.ts); anything else is reported, never removed.
// - Queued and running tasks are never touched, whatever their expiresAt says: a container may still write there.
// - A task whose record names another host is left for that host (its files live on that host's disk), except that
//   with an archive store all hosts share, a task whose ttl has run out may be expired by any host: its archive
//   object, log stream and record go, and its workspace, on its own host's disk, is removed there as a leftover.
//   So the tasks of a host that is gone for good still expire.
// - A missing or unreadable record means "not ours to judge": reported and skipped. Record-less `task-*` entries
//   are removed only when the operator asks for `orphans`, and only once older than a threshold.
// - With a disk budget, the oldest finished tasks go first, only as many as it takes to get under the budget.
import { FINAL_STATUSES, type TaskStatus } from "../contract/types.js";
import { WORKSPACE_PATTERN, type TaskRecord } from "../domain/task.js";
import type { ExpiryFix } from "../store/expiry-index.js";
import type { DiskEntry } from "./disk-usage.js";

/** How long an `expired` record is kept (so clients get 410, not 404) before it and its index entries go. */
export const RECORD_RETENTION_MS = 7 * 86_400_000;
/** With `orphans` and no `olderThanMs`: how old a record-less `task-*` entry must be before it is removed. */
export const DEFAULT_ORPHAN_AGE_MS = 7 * 86_400_000;
/** An archive temp file older than this was left by a crash (an archive is written in far less). */
export const STALE_TEMP_MS = 3_600_000;

/** Options of one pass; the defaults are the scheduled pass. */
export interface SweepOptions {
  /** Clock for this pass (ms); tests move it forward. Default: Date.now(). */
  readonly now?: number;
  /** Plan and report only: nothing is locked, removed or changed. */
  readonly dryRun?: boolean;
  /**
   * Also expire finished tasks that finished at least this long ago, even if their ttl has not run out; with
   * `orphans`, also the age a record-less entry must reach.
   */
  readonly olderThanMs?: number;
  /** Expire every finished task whatever its age or ttl (`berth workspace clean --all`); never a queued or running one. */
  readonly all?: boolean;
  /** Also remove record-less `task-*` workspaces/archives older than `olderThanMs` (default 7 days). */
  readonly orphans?: boolean;
}

/**
 * Why a task's files are removed: its ttl, the operator's age limit, the operator's `all`, the disk budget, an
 * orphan, a retry, by hand.
 */
export type RemovalReason = "ttl" | "older_than" | "all" | "disk_budget" | "orphan" | "leftover" | "manual";
/**
 * Why an item was left alone: a name berth does not make, an unfinished archive older than an hour, no record,
 * an unreadable record, a record naming another workspace, another host's task, a queued/running task, another
 * cleanup holding the task's lock, or a task that changed between planning and removal.
 */
export type SkipReason =
  | "foreign_name"
  | "stale_temp"
  | "no_record"
  | "corrupt_record"
  | "record_mismatch"
  | "other_host"
  | "active"
  | "locked"
  | "changed";

/** An item a pass left alone, and why. `item` is `<root>/<name>` for disk entries, else `task <id>`. */
export interface SweepSkip {
  readonly item: string;
  readonly taskId: string | null;
  readonly reason: SkipReason;
  readonly detail: string;
}

/** One planned removal: a task's (or a record-less entry's) workspace, archive and log stream. */
export interface Removal {
  readonly id: string;
  readonly workspace: string;
  /** The record as planned on; null for a record-less entry (`orphan`). */
  readonly record: TaskRecord | null;
  readonly why: RemovalReason;
  /** Absolute paths of the workspace and/or archive found on disk. */
  readonly files: readonly string[];
  /** Bytes on disk of `files`; 0 until sized ({@link fitBudget}). */
  readonly bytes: number;
}

export interface SweepPlan {
  /** Due tasks and record-less entries to remove, in the order found. */
  readonly removals: Removal[];
  /** Finished tasks not yet due that have files here: what a disk budget may expire (why "disk_budget"). */
  readonly budgetCandidates: Removal[];
  /** Expired tasks whose record retention is over: their records go for good. */
  readonly purges: string[];
  readonly skips: SweepSkip[];
  /** Expiry index entries that disagree with their record (applied only by a real pass). */
  readonly indexFixes: ExpiryFix[];
}

export interface PlanInput {
  readonly now: number;
  /** This host's name: tasks recorded on another host are that host's to clean. */
  readonly host: string;
  /** Whether archives live in a store every host shares (then due tasks of other hosts may be expired here). */
  readonly sharedArchives?: boolean;
  /** Both roots' entries (disk-usage.ts listLocalEntries). */
  readonly entries: readonly DiskEntry[];
  /** Ids the expiry index holds as due at `now`. */
  readonly due: readonly string[];
  /** What the store answered for every id of {@link taskIds}: the record, null (none), or an Error (unreadable). */
  readonly records: ReadonlyMap<string, TaskRecord | null | Error>;
  readonly options: SweepOptions;
}

const DAY_MS = 86_400_000;
/** Final statuses but `expired`: a task that ended and still has its files. */
export const ENDED: readonly TaskStatus[] = FINAL_STATUSES.filter((s) => s !== "expired");
const isFinal = (s: TaskStatus) => FINAL_STATUSES.includes(s);
const paths = (entries: readonly DiskEntry[]) => entries.flatMap((e) => (e.path ? [e.path] : []));
const itemOf = (e: DiskEntry) => `${e.root}/${e.name}`;
const isStaleTemp = (e: DiskEntry, now: number) => e.kind === "temp" && now - e.mtimeMs > STALE_TEMP_MS;

/** Every task a pass looks at, due ones first, then those with entries here; the records to read for {@link planSweep}. */
export function taskIds(entries: readonly DiskEntry[], due: readonly string[]): string[] {
  return [...new Set([...due, ...entries.flatMap((e) => (e.kind !== "foreign" && e.taskId ? [e.taskId] : []))])];
}

/** Decides what a pass removes, purges, repairs and leaves alone (and why), before anything is sized or touched. */
export function planSweep(input: PlanInput): SweepPlan {
  const { now, host, options } = input;
  const plan: SweepPlan = { removals: [], budgetCandidates: [], purges: [], skips: [], indexFixes: [] };
  const skip = (item: string, taskId: string | null, reason: SkipReason, detail: string) =>
    plan.skips.push({ item, taskId, reason, detail });
  const due = new Set(input.due);
  const local = new Map<string, DiskEntry[]>();
  for (const e of input.entries) {
    if (e.kind === "foreign") skip(itemOf(e), null, "foreign_name", "not a name berth creates; left alone");
    else if (isStaleTemp(e, now)) {
      skip(itemOf(e), null, "stale_temp", "an unfinished archive older than an hour (left by a crash?); remove it by hand");
    } else if (e.taskId) local.set(e.taskId, [...(local.get(e.taskId) ?? []), e]);
  }

  for (const id of taskIds(input.entries, input.due)) {
    const files = local.get(id) ?? [];
    const item = files[0] ? itemOf(files[0]) : `task ${id}`;
    const loaded = input.records.has(id) ? (input.records.get(id) ?? null) : new Error("not loaded");
    // The workspace name is checked too: it becomes a path, so a record that names anything else is not trusted.
    const corrupt =
      loaded instanceof Error
        ? loaded.message
        : loaded && (loaded.id !== id || !WORKSPACE_PATTERN.test(loaded.workspace))
          ? "damaged record"
          : null;
    if (corrupt !== null) {
      skip(item, id, "corrupt_record", `the task record cannot be read (${corrupt}); left alone`);
      continue;
    }
    const record = loaded as TaskRecord | null;
    if (!record) {
      if (due.has(id)) plan.indexFixes.push({ id, score: null }); // index entry of a deleted task
      planRecordless(plan, id, files, now, options);
      continue;
    }
    const mine = files.filter((f) => f.workspace === record.workspace);
    for (const f of files.filter((x) => x.workspace !== record.workspace)) {
      skip(itemOf(f), id, "record_mismatch", `the record of task ${id} names workspace ${record.workspace}; left alone`);
    }
    if (!isFinal(record.status)) {
      if (due.has(id)) skip(item, id, "active", `task is ${record.status}; never touched until it has ended`);
      continue;
    }
    const foreignHost = record.host !== null && record.host !== host;
    const base = { id, workspace: record.workspace, record, files: paths(mine), bytes: 0 };
    if (foreignHost && input.sharedArchives && mine.length === 0 && record.status !== "expired") {
      const finishedAt = record.finishedAtMs ?? record.createdAtMs;
      if ((record.expiresAtMs ?? finishedAt + record.ttlSeconds * 1000) <= now) {
        plan.removals.push({ ...base, why: "ttl" });
        continue;
      }
    }
    if (foreignHost && (mine.length > 0 || (due.has(id) && record.status !== "expired"))) {
      skip(item, id, "other_host", `task ran on ${record.host}; that host cleans it`);
    }
    if (record.status === "expired") {
      // Expired records normally have no files left; any found here are from an interrupted removal.
      if (mine.length > 0) {
        if (!foreignHost) plan.removals.push({ ...base, why: "leftover" });
      } else if ((record.expiresAtMs ?? 0) + RECORD_RETENTION_MS <= now) plan.purges.push(id);
      else if (due.has(id)) plan.indexFixes.push({ id, score: (record.expiresAtMs ?? now) + RECORD_RETENTION_MS });
      continue;
    }
    if (foreignHost) continue;
    const finishedAt = record.finishedAtMs ?? record.createdAtMs;
    const expiresAt = record.expiresAtMs ?? finishedAt + record.ttlSeconds * 1000;
    if (expiresAt <= now) plan.removals.push({ ...base, why: "ttl" });
    else if (options.all) plan.removals.push({ ...base, why: "all" });
    else if (options.olderThanMs !== undefined && finishedAt <= now - options.olderThanMs)
      plan.removals.push({ ...base, why: "older_than" });
    else {
      if (due.has(id)) plan.indexFixes.push({ id, score: expiresAt }); // the index's score disagrees with the record
      if (mine.length > 0) plan.budgetCandidates.push({ ...base, why: "disk_budget" });
    }
  }
  return plan;
}

/** Entries of a task that has no record: removed only with `orphans` and once old enough, else reported. */
function planRecordless(plan: SweepPlan, id: string, files: readonly DiskEntry[], now: number, options: SweepOptions): void {
  const minAge = options.olderThanMs ?? DEFAULT_ORPHAN_AGE_MS;
  for (const ws of new Set(files.map((f) => f.workspace ?? ""))) {
    const group = files.filter((f) => f.workspace === ws);
    // Age by the younger of the name's timestamp and the entry's mtime: a fresh entry is never an orphan.
    const age = now - Math.max(...group.map((f) => Math.max(f.mtimeMs, f.createdAtMs ?? 0)));
    if (options.orphans && age >= minAge) {
      plan.removals.push({ id, workspace: ws, record: null, why: "orphan", files: paths(group), bytes: 0 });
      continue;
    }
    const detail = options.orphans
      ? `no task record, but younger than ${Math.round((minAge / DAY_MS) * 10) / 10} days; left alone`
      : "no task record (deleted, or another namespace's?); left alone. `berth workspace clean --orphans [--older-than-days N]` removes such entries";
    for (const f of group) plan.skips.push({ item: itemOf(f), taskId: id, reason: "no_record", detail });
  }
}

/** Disk usage against the budget: of both roots before the pass, and what should remain after it. */
export interface DiskReport {
  readonly budgetBytes: number;
  readonly usedBytes: number;
  readonly projectedBytes: number;
}

/** Without a budget, a task archived by berth already knows its size (workspace files + archive): no walk needed. */
const knownBytes = (r: Removal, budgetBytes: number) =>
  budgetBytes === 0 && r.record?.workspaceBytes != null && r.record.archive ? r.record.workspaceBytes + r.record.archive.bytes : null;

/**
 * Paths whose size the pass must measure: with a budget, every entry of both roots (the budget counts all of
 * them); without, only the files of removals whose size their record does not tell.
 */
export function pathsToMeasure(plan: SweepPlan, entries: readonly DiskEntry[], budgetBytes: number): string[] {
  if (budgetBytes > 0) return entries.flatMap((e) => (e.path && e.type !== "gone" ? [e.path] : []));
  return plan.removals.flatMap((r) => (knownBytes(r, budgetBytes) === null ? [...r.files] : []));
}

/**
 * Sizes the removals from `sizes` (what {@link pathsToMeasure} asked for) and, with a budget, adds budget
 * candidates, oldest finished first (then by id), until the projected usage is within the budget.
 */
export function fitBudget(
  plan: SweepPlan,
  sizes: ReadonlyMap<string, number>,
  budgetBytes: number,
): { removals: Removal[]; disk: DiskReport | null } {
  const sized = (r: Removal): Removal => ({
    ...r,
    bytes: knownBytes(r, budgetBytes) ?? r.files.reduce((n, f) => n + (sizes.get(f) ?? 0), 0),
  });
  const removals = plan.removals.map(sized);
  if (budgetBytes <= 0) return { removals, disk: null };
  const used = [...sizes.values()].reduce((a, b) => a + b, 0);
  let projected = used - removals.reduce((n, r) => n + r.bytes, 0);
  const finished = (r: Removal) => r.record?.finishedAtMs ?? r.record?.createdAtMs ?? 0;
  const candidates = [...plan.budgetCandidates].sort((a, b) => finished(a) - finished(b) || a.id.localeCompare(b.id));
  for (const c of candidates) {
    if (projected <= budgetBytes) break;
    const r = sized(c);
    removals.push(r);
    projected -= r.bytes;
  }
  return { removals, disk: { budgetBytes, usedBytes: used, projectedBytes: projected } };
}

/** What became of one item: removed, or left alone and why. */
export type Outcome = "removed" | { reason: SkipReason; detail: string };

/**
 * Re-checks a removal against its record as re-read under the task's lock: null when it may go ahead, else why
 * not (the task changed since planning: ended differently, was deleted, moved host, or is no longer expired).
 * Another host's task may go ahead only as planned for a shared archive store: by its ttl, with no files here.
 */
export function recheck(r: Removal, fresh: TaskRecord | null, host: string): Outcome | null {
  const wanted = r.why === "leftover" ? ["expired"] : ENDED;
  const sharedExpiry = r.why === "ttl" && r.files.length === 0 && r.record !== null && r.record.host === fresh?.host;
  if (
    !fresh ||
    fresh.workspace !== r.workspace ||
    !wanted.includes(fresh.status) ||
    (fresh.host !== null && fresh.host !== host && !sharedExpiry)
  ) {
    return { reason: "changed", detail: `task is now ${fresh?.status ?? "gone"}; nothing to do` };
  }
  return null;
}

/** Whether an expired record's retention is over at `now` (then it and its index entries may be deleted). */
export const purgeable = (r: TaskRecord | null, now: number): boolean =>
  r?.status === "expired" && (r.expiresAtMs ?? 0) + RECORD_RETENTION_MS <= now;

/** Why `berth workspace remove` must refuse a task, or null: queued and running tasks, and other hosts' tasks. */
export function refuseByHand(record: TaskRecord, host: string): Outcome | null {
  if (!isFinal(record.status)) return { reason: "active", detail: `task is ${record.status}; cancel it first` };
  if (record.host !== null && record.host !== host) return { reason: "other_host", detail: `task ran on ${record.host}; run this there` };
  return null;
}

/** The expired record keeps what a client needs to recognise its task; big, now meaningless fields are emptied. */
export function expiredFields(r: TaskRecord, why: RemovalReason, now: number): Partial<TaskRecord> {
  const shorten = JSON.stringify(r.command).length > 2048;
  const ended = `${r.status}${r.exitCode !== null ? ` with exit code ${r.exitCode}` : ""}`;
  return {
    status: "expired",
    expiresAtMs: why === "ttl" && r.expiresAtMs !== null ? r.expiresAtMs : now,
    archive: null,
    archiveSkipped: [],
    message: `Ended ${ended}; workspace, archive and logs removed by cleanup (${why.replace("_", " ")})${shorten ? "; command shortened" : ""}.`,
    ...(shorten ? { command: r.command.slice(0, 16).map((a) => (a.length > 128 ? `${a.slice(0, 128)}…` : a)) } : {}),
  };
}
