// One cleanup pass over this host's disk: expires finished tasks whose time has come (workspace, archive and
// log stream removed, record kept as `expired` so clients get 410), purges expired records after
// RECORD_RETENTION_MS, and reports everything it would not touch. Run by the scheduler (schedule.ts) and by
// `berth workspace clean`.
//
// Safety rules, in the order they are applied:
// - Only entries named as berth names them are considered (disk-usage.ts); anything else is reported, never removed.
// - Queued and running tasks are never touched, whatever their expiresAt says: a container may still write there.
// - A task whose record names another host is left for that host (its files live on that host's disk).
// - A missing or unreadable record means "not ours to judge": reported and skipped, unless the operator asked for
//   `all` (record-less `task-*` entries older than a threshold).
// - Each task is handled under a Redis lock (SET NX PX) and re-read under it; files go first, the record becomes
//   `expired` only after they are gone, so a crash half-way is simply retried by the next pass.
// - Deletion is GNU `rm -rf --one-file-system` (workspace.ts removeTrees): no symbolic link is ever followed.
//
// Tasks are handled in chunks: per chunk, one Redis round trip takes all the locks, one re-reads all the records,
// one `rm` process removes all the files, and a few round trips finish. A few chunks are in flight at once, so
// that rm processes run side by side and overlap with the Redis work of other chunks.
import { randomBytes } from "node:crypto";
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { FINAL_STATUSES, type TaskStatus } from "../contract/types.js";
import { WORKSPACE_PATTERN, type TaskRecord } from "../domain/task.js";
import { archivePath, removeTrees, workspacePath } from "../workspace/workspace.js";
import { diskUsage, listLocalEntries, type DiskEntry } from "./disk-usage.js";

/** How long an `expired` record is kept (so clients get 410, not 404) before it and its index entries go. */
export const RECORD_RETENTION_MS = 7 * 86_400_000;
/** With `all` and no `olderThanMs`: how old a record-less `task-*` entry must be before it is removed. */
export const DEFAULT_ORPHAN_AGE_MS = 7 * 86_400_000;
const LOCK_TTL_MS = 15 * 60_000;
const STALE_TEMP_MS = 3_600_000;
const MAX_DUE_PER_PASS = 20_000;
// Tasks per chunk (one rm process removes a chunk's workspaces, another its archives), and chunks in flight at once.
const CHUNK = 128;
const CHUNKS_IN_FLIGHT = 4;
const ENDED: readonly TaskStatus[] = FINAL_STATUSES.filter((s) => s !== "expired");
const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/** Options of one pass; the defaults are the scheduled pass. */
export interface SweepOptions {
  /** Clock for this pass (ms); tests move it forward. Default: Date.now(). */
  readonly now?: number;
  /** Plan and report only: nothing is locked, removed or changed. */
  readonly dryRun?: boolean;
  /** Also expire finished tasks that finished at least this long ago, even if their ttl has not run out. */
  readonly olderThanMs?: number;
  /** Also remove record-less `task-*` workspaces/archives older than `olderThanMs` (default 7 days). */
  readonly all?: boolean;
}

/** Why a task's files are removed: its ttl, the operator's age limit, the disk budget, an orphan, a retry, by hand. */
export type RemovalReason = "ttl" | "older_than" | "disk_budget" | "orphan" | "leftover" | "manual";
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

/** A task (or record-less entry) whose workspace, archive and log stream a pass removed. */
export interface SweepRemoval {
  readonly taskId: string;
  readonly workspace: string;
  readonly tenant: string | null;
  readonly why: RemovalReason;
  /** Bytes on disk of the files below, measured before removal. */
  readonly bytes: number;
  /** Absolute paths of the workspace and/or archive that were (or, in a dry run, would be) removed. */
  readonly files: readonly string[];
}
/** An item a pass left alone, and why. `item` is `<root>/<name>` for disk entries, else `task <id>`. */
export interface SweepSkip {
  readonly item: string;
  readonly taskId: string | null;
  readonly reason: SkipReason;
  readonly detail: string;
}
/** An item a pass failed on; it stays as it was (files first, record last) and the next pass retries it. */
export interface SweepError {
  readonly item: string;
  readonly taskId: string | null;
  readonly message: string;
}

/** What one pass did (or, with dryRun, would do). */
export interface SweepResult {
  readonly host: string;
  readonly dryRun: boolean;
  readonly startedAt: string;
  durationMs: number;
  readonly removed: SweepRemoval[];
  /** Expired records deleted for good after RECORD_RETENTION_MS. */
  readonly purged: string[];
  readonly skipped: SweepSkip[];
  readonly errors: SweepError[];
  bytesReclaimed: number;
  /** With a disk budget: usage of both roots before the pass, and what should remain after it. */
  disk: { budgetBytes: number; usedBytes: number; projectedBytes: number } | null;
  /** True when more tasks were due than one pass handles; the next pass continues. */
  more: boolean;
}

interface Plan {
  id: string;
  workspace: string;
  record: TaskRecord | null;
  why: RemovalReason;
  files: string[];
  bytes: number;
}
type Outcome = "removed" | { reason: SkipReason; detail: string };
/** What became of one item: an Error means it failed and stays for the next pass. */
type Result = Outcome | Error;
const LOCKED: Outcome = { reason: "locked", detail: "another cleanup is handling it" };

/** Runs one cleanup pass. Never throws for a single item: its failure is in `errors`. */
export async function sweep(deps: Deps, services: Services, opts: SweepOptions = {}): Promise<SweepResult> {
  const now = opts.now ?? Date.now();
  const dryRun = opts.dryRun ?? false;
  const { redis, config } = deps;
  const { keys } = services;
  const log = deps.logger.child({ component: "cleanup", host: deps.host, dryRun });
  const started = Date.now();
  const result: SweepResult = {
    host: deps.host,
    dryRun,
    startedAt: new Date(started).toISOString(),
    durationMs: 0,
    removed: [],
    purged: [],
    skipped: [],
    errors: [],
    bytesReclaimed: 0,
    disk: null,
    more: false,
  };
  log.info({ event: "cleanup.start", now, olderThanMs: opts.olderThanMs ?? null, all: opts.all ?? false }, "cleanup pass starting");
  const skip = (s: SweepSkip) => {
    result.skipped.push(s);
    // Other hosts' tasks are expected on every pass of every host: keep them out of the info log.
    log[s.reason === "other_host" ? "debug" : "info"]({ event: "cleanup.skip", ...s }, "cleanup skipped an item");
  };
  const fail = (item: string, taskId: string | null, err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    result.errors.push({ item, taskId, message });
    log.error({ event: "cleanup.error", item, taskId, err }, "cleanup could not handle an item");
  };

  const entries = await listLocalEntries(config.dirs);
  const due = await redis.zrangebyscore(keys.expiry, "-inf", now, "LIMIT", 0, MAX_DUE_PER_PASS);
  result.more = due.length === MAX_DUE_PER_PASS;
  const dueSet = new Set(due);
  const local = new Map<string, DiskEntry[]>();
  for (const e of entries) {
    if (e.kind === "foreign")
      skip({ item: `${e.root}/${e.name}`, taskId: null, reason: "foreign_name", detail: "not a name berth creates; left alone" });
    else if (e.kind === "temp" && now - e.mtimeMs > STALE_TEMP_MS) {
      skip({
        item: `${e.root}/${e.name}`,
        taskId: null,
        reason: "stale_temp",
        detail: "an unfinished archive older than an hour (left by a crash?); remove it by hand",
      });
    } else if (e.taskId) local.set(e.taskId, [...(local.get(e.taskId) ?? []), e]);
  }

  const ids = [...new Set([...due, ...local.keys()])];
  const loaded = await load(services, ids);

  const plans: Plan[] = [];
  const budgetCandidates: Plan[] = [];
  const purges: string[] = [];
  const indexFixes: (() => Promise<unknown>)[] = [];
  for (const id of ids) {
    const { record, corrupt } = loaded.get(id) ?? { record: null, corrupt: "not loaded" };
    const files = local.get(id) ?? [];
    const item = files[0] ? `${files[0].root}/${files[0].name}` : `task ${id}`;
    if (corrupt) {
      skip({ item, taskId: id, reason: "corrupt_record", detail: `the task record cannot be read (${corrupt}); left alone` });
      continue;
    }
    if (!record) {
      if (dueSet.has(id)) indexFixes.push(() => redis.zrem(keys.expiry, id)); // index entry of a deleted task
      if (files.length === 0) continue;
      const minAge = opts.olderThanMs ?? DEFAULT_ORPHAN_AGE_MS;
      for (const ws of new Set(files.map((f) => f.workspace ?? ""))) {
        const group = files.filter((f) => f.workspace === ws);
        // Age by the younger of the name's timestamp and the entry's mtime: a fresh entry is never an orphan.
        const age = now - Math.max(...group.map((f) => Math.max(f.mtimeMs, f.createdAtMs ?? 0)));
        if (opts.all && age >= minAge) plans.push({ id, workspace: ws, record: null, why: "orphan", files: paths(group), bytes: 0 });
        else {
          const detail = opts.all
            ? `no task record, but younger than ${Math.round((minAge / 86_400_000) * 10) / 10} days; left alone`
            : "no task record (deleted, or another namespace's?); left alone. `berth workspace clean --all [--older-than-days N]` removes such entries";
          for (const f of group) skip({ item: `${f.root}/${f.name}`, taskId: id, reason: "no_record", detail });
        }
      }
      continue;
    }
    const mine = files.filter((f) => f.workspace === record.workspace);
    for (const f of files.filter((x) => x.workspace !== record.workspace)) {
      skip({
        item: `${f.root}/${f.name}`,
        taskId: id,
        reason: "record_mismatch",
        detail: `the record of task ${id} names workspace ${record.workspace}; left alone`,
      });
    }
    if (!isFinal(record.status)) {
      if (dueSet.has(id))
        skip({ item, taskId: id, reason: "active", detail: `task is ${record.status}; never touched until it has ended` });
      continue;
    }
    const foreignHost = record.host !== null && record.host !== deps.host;
    if (foreignHost && (mine.length > 0 || (dueSet.has(id) && record.status !== "expired"))) {
      skip({ item, taskId: id, reason: "other_host", detail: `task ran on ${record.host}; that host cleans it` });
    }
    if (record.status === "expired") {
      // Expired records normally have no files left; any found here are from an interrupted removal.
      if (mine.length > 0) {
        if (!foreignHost) plans.push({ id, workspace: record.workspace, record, why: "leftover", files: paths(mine), bytes: 0 });
      } else if ((record.expiresAtMs ?? 0) + RECORD_RETENTION_MS <= now) purges.push(id);
      else if (dueSet.has(id)) indexFixes.push(() => redis.zadd(keys.expiry, "XX", (record.expiresAtMs ?? now) + RECORD_RETENTION_MS, id));
      continue;
    }
    if (foreignHost) continue;
    const finishedAt = record.finishedAtMs ?? record.createdAtMs;
    const expiresAt = record.expiresAtMs ?? finishedAt + record.ttlSeconds * 1000;
    const plan = { id, workspace: record.workspace, record, files: paths(mine), bytes: 0 };
    if (expiresAt <= now) plans.push({ ...plan, why: "ttl" });
    else if (opts.olderThanMs !== undefined && finishedAt <= now - opts.olderThanMs) plans.push({ ...plan, why: "older_than" });
    else {
      if (dueSet.has(id)) indexFixes.push(() => redis.zadd(keys.expiry, "XX", expiresAt, id)); // score disagrees with the record
      if (mine.length > 0) budgetCandidates.push({ ...plan, why: "disk_budget" });
    }
  }

  // Sizes: of everything when a budget is set (the budget counts all of both roots), else of what goes.
  const budget = config.diskBudgetBytes;
  // Without a budget, a task archived by berth already knows its size (workspace files + archive): no walk needed.
  const known = (p: Plan) =>
    budget === 0 && p.record?.workspaceBytes != null && p.record.archive ? p.record.workspaceBytes + p.record.archive.bytes : null;
  const measured =
    budget > 0
      ? entries.flatMap((e) => (e.path && e.type !== "gone" ? [e.path] : []))
      : plans.flatMap((p) => (known(p) === null ? p.files : []));
  const sizes = measured.length > 0 ? await diskUsage(measured) : new Map<string, number>();
  const bytesOf = (p: Plan) => known(p) ?? p.files.reduce((n, f) => n + (sizes.get(f) ?? 0), 0);
  for (const p of plans) p.bytes = bytesOf(p);
  if (budget > 0) {
    const used = [...sizes.values()].reduce((a, b) => a + b, 0);
    let projected = used - plans.reduce((n, p) => n + p.bytes, 0);
    const finished = (p: Plan) => p.record?.finishedAtMs ?? p.record?.createdAtMs ?? 0;
    budgetCandidates.sort((a, b) => finished(a) - finished(b) || a.id.localeCompare(b.id));
    for (const c of budgetCandidates) {
      if (projected <= budget) break;
      c.bytes = bytesOf(c);
      plans.push(c);
      projected -= c.bytes;
    }
    result.disk = { budgetBytes: budget, usedBytes: used, projectedBytes: projected };
  }

  const outcomes = await carryOut(deps, services, dryRun, plans, (held) => execute(deps, services, held, now));
  // Reported in plan order (expiry, then the budget's oldest first).
  for (const plan of plans) {
    const outcome = outcomes.get(plan) as Result;
    const item = plan.workspace || `task ${plan.id}`;
    if (outcome instanceof Error) fail(item, plan.id, outcome);
    else if (outcome !== "removed") skip({ item, taskId: plan.id, ...outcome });
    else {
      result.removed.push({
        taskId: plan.id,
        workspace: plan.workspace,
        tenant: plan.record?.tenant ?? null,
        why: plan.why,
        bytes: plan.bytes,
        files: plan.files,
      });
      result.bytesReclaimed += plan.bytes;
      log.info(
        { event: "cleanup.removed", taskId: plan.id, workspace: plan.workspace, why: plan.why, bytes: plan.bytes, files: plan.files },
        dryRun ? "would remove task files" : "removed task files",
      );
    }
  }
  const purgeItems = purges.map((id) => ({ id }));
  const purged = await carryOut(deps, services, dryRun, purgeItems, (held) =>
    purge(
      services,
      held.map((x) => x.id),
      now,
    ),
  );
  for (const it of purgeItems) {
    const { id } = it;
    const outcome = purged.get(it) as Result;
    if (outcome instanceof Error) fail(`task ${id}`, id, outcome);
    else if (outcome !== "removed") skip({ item: `task ${id}`, taskId: id, ...outcome });
    else {
      result.purged.push(id);
      log.info({ event: "cleanup.purged", taskId: id }, dryRun ? "would delete expired task record" : "deleted expired task record");
    }
  }
  if (!dryRun) for (const fix of indexFixes) await fix().catch((err: unknown) => log.warn({ err }, "expiry index repair failed"));

  result.durationMs = Date.now() - started;
  log.info(
    {
      event: "cleanup.summary",
      removed: result.removed.length,
      purged: result.purged.length,
      skipped: result.skipped.length,
      errors: result.errors.length,
      bytesReclaimed: result.bytesReclaimed,
      disk: result.disk,
      more: result.more,
      durationMs: result.durationMs,
    },
    dryRun ? "cleanup dry run finished" : "cleanup pass finished",
  );
  return result;
}

/**
 * Expires one task now (`berth workspace remove`): same lock, checks and order as a pass. Refuses queued and
 * running tasks and tasks of another host by returning the skip reason instead of "removed".
 */
export async function expireTaskNow(
  deps: Deps,
  services: Services,
  record: TaskRecord,
  opts: { dryRun?: boolean; now?: number } = {},
): Promise<{ outcome: Outcome; removal: SweepRemoval }> {
  const entries = (await listLocalEntries(deps.config.dirs)).filter((e) => e.workspace === record.workspace && e.taskId === record.id);
  const files = paths(entries);
  const sizes = files.length > 0 ? await diskUsage(files) : new Map<string, number>();
  const plan: Plan = {
    id: record.id,
    workspace: record.workspace,
    record,
    why: record.status === "expired" ? "leftover" : "manual",
    files,
    bytes: files.reduce((n, f) => n + (sizes.get(f) ?? 0), 0),
  };
  const removal = { taskId: plan.id, workspace: plan.workspace, tenant: record.tenant, why: plan.why, bytes: plan.bytes, files };
  let outcome: Outcome;
  if (!isFinal(record.status)) outcome = { reason: "active", detail: `task is ${record.status}; cancel it first` };
  else if (record.host !== null && record.host !== deps.host)
    outcome = { reason: "other_host", detail: `task ran on ${record.host}; run this there` };
  else if (opts.dryRun) outcome = "removed";
  else {
    const [done] = await underLocks(deps, services, [plan], (held) => execute(deps, services, held, opts.now ?? Date.now()));
    if (done instanceof Error) throw done;
    outcome = done as Outcome;
  }
  if (outcome === "removed")
    deps.logger.info(
      { event: "cleanup.removed", taskId: record.id, why: plan.why, bytes: plan.bytes, dryRun: opts.dryRun ?? false },
      "removed task files by hand",
    );
  return { outcome, removal };
}

/**
 * Carries out plans whose tasks' locks are held (underLocks): re-reads and re-checks the records, removes the
 * files (workspaces in one `rm`, then the archives of those whose workspace is gone), then the log streams, and
 * only then marks the records expired, so a crash half-way leaves tasks the next pass simply retries. Returns each plan's outcome, in order.
 */
async function execute(deps: Deps, services: Services, plans: readonly Plan[], now: number): Promise<Result[]> {
  const { store, keys } = services;
  const { dirs } = deps.config;
  const out: (Result | null)[] = plans.map(() => null);
  const open = () => plans.flatMap((_, i) => (out[i] === null ? [i] : []));
  const plan = (i: number) => plans[i] as Plan;

  // Orphans: a record (even an unreadable one) appearing since planning means hands off.
  const orphans = open().filter((i) => plan(i).why === "orphan");
  const tracked = open().filter((i) => plan(i).why !== "orphan");
  const [records, exist] = await Promise.all([
    store.getMany(tracked.map((i) => plan(i).id)),
    pipelined(
      deps,
      orphans.map((i) => ["exists", keys.task(plan(i).id)]),
    ),
  ]);
  orphans.forEach((i, k) => {
    const [err, n] = exist[k] ?? [null, 0];
    if (err) out[i] = err;
    else if (n === 1) out[i] = { reason: "changed", detail: "a task record appeared; left alone" };
  });
  const fresh = new Map<number, TaskRecord>();
  tracked.forEach((i, k) => {
    const r = records[k] ?? null;
    const wanted = plan(i).why === "leftover" ? ["expired"] : ENDED;
    if (r instanceof Error) out[i] = r;
    else if (!r || r.workspace !== plan(i).workspace || !wanted.includes(r.status) || (r.host !== null && r.host !== deps.host)) {
      out[i] = { reason: "changed", detail: `task is now ${r?.status ?? "gone"}; nothing to do` };
    } else fresh.set(i, r);
  });

  const go = open();
  const ws = (i: number) => workspacePath(dirs.workspaces, plan(i).workspace);
  const ar = (i: number) => archivePath(dirs.archives, plan(i).workspace);
  // Workspaces first; an archive only once its workspace is gone, so a task left as it was (its workspace could
  // not be removed) still has the archive its record lists.
  const wsFailed = await removeTrees(go.map(ws));
  const arFailed = await removeTrees([], go.filter((i) => !wsFailed.has(ws(i))).map(ar));
  for (const i of go) out[i] = wsFailed.get(ws(i)) ?? arFailed.get(ar(i)) ?? null;

  const logs = open();
  const unlinked = await Promise.all(logs.map((i) => services.logs.remove(plan(i).id).then(() => null, asError)));
  logs.forEach((i, k) => {
    out[i] = unlinked[k] ?? null;
  });

  // Files and logs are gone; only now do the records say so.
  const marks = open().filter((i) => fresh.has(i) && plan(i).why !== "leftover");
  const applied = await store.transitionMany(
    marks.map((i) => {
      const r = fresh.get(i) as TaskRecord;
      const fields = expiredFields(r, plan(i).why, now);
      return { id: r.id, tenant: r.tenant, from: ENDED, fields, expiryScore: (fields.expiresAtMs ?? now) + RECORD_RETENTION_MS };
    }),
  );
  marks.forEach((i, k) => {
    const a = applied[k] ?? null;
    out[i] = a === true ? "removed" : a instanceof Error ? a : { reason: "changed", detail: `task is now ${a ?? "gone"}` };
  });
  for (const i of open()) out[i] = "removed";
  return out as Result[];
}

/** Under the tasks' locks: deletes expired records (and what is left of their logs) whose retention is over. */
async function purge(services: Services, ids: readonly string[], now: number): Promise<Result[]> {
  const records = await services.store.getMany(ids);
  return Promise.all(
    ids.map(async (id, k): Promise<Result> => {
      const fresh = records[k] ?? null;
      if (fresh instanceof Error) return fresh;
      if (fresh?.status !== "expired" || (fresh.expiresAtMs ?? 0) + RECORD_RETENTION_MS > now)
        return { reason: "changed", detail: `task is now ${fresh?.status ?? "gone"}` };
      try {
        await services.logs.remove(id);
        await services.store.remove(fresh);
        return "removed";
      } catch (err) {
        return asError(err);
      }
    }),
  );
}

/** The expired record keeps what a client needs to recognise its task; big, now meaningless fields are emptied. */
function expiredFields(r: TaskRecord, why: RemovalReason, now: number): Partial<TaskRecord> {
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

/** Every task's record, read in chunks of one round trip each; a record that is there but unusable is `corrupt`. */
async function load(
  services: Services,
  ids: readonly string[],
): Promise<Map<string, { record: TaskRecord | null; corrupt: string | null }>> {
  const loaded = new Map<string, { record: TaskRecord | null; corrupt: string | null }>();
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000);
    const records = await services.store.getMany(chunk);
    chunk.forEach((id, k) => {
      const r = records[k] ?? null;
      if (r instanceof Error) loaded.set(id, { record: null, corrupt: r.message });
      // The workspace name is checked here too: it becomes a path, so a record that names anything else is not trusted.
      else if (r && (r.id !== id || !WORKSPACE_PATTERN.test(r.workspace))) loaded.set(id, { record: null, corrupt: "damaged record" });
      else loaded.set(id, { record: r, corrupt: null });
    });
  }
  return loaded;
}

/**
 * Carries out items chunk by chunk, a few chunks at once, each under its tasks' locks (underLocks); in a dry run
 * nothing is done and every item counts as "removed".
 */
async function carryOut<T extends { id: string }>(
  deps: Deps,
  services: Services,
  dryRun: boolean,
  items: readonly T[],
  fn: (held: T[]) => Promise<Result[]>,
): Promise<Map<T, Result>> {
  const out = new Map<T, Result>();
  if (dryRun) for (const it of items) out.set(it, "removed");
  else {
    await forEachLimit(chunks(items, CHUNK), CHUNKS_IN_FLIGHT, async (chunk) => {
      const done = await underLocks(deps, services, chunk, fn).catch((err: unknown) => chunk.map(() => asError(err)));
      chunk.forEach((it, i) => {
        out.set(it, done[i] as Result);
      });
    });
  }
  return out;
}

/**
 * Takes the cleanup locks of the items' tasks (one key per task, shared by every host and process: whoever holds
 * it is the only one touching that task) in one round trip, runs `fn` on the items whose lock it got, and
 * releases those locks when `fn` is done. Items whose lock is held elsewhere are `locked`. `fn` returns the
 * results of the items it was given, in order; if it throws, they all get its error.
 */
async function underLocks<T extends { id: string }>(
  deps: Deps,
  services: Services,
  items: readonly T[],
  fn: (held: T[]) => Promise<Result[]>,
): Promise<Result[]> {
  const tokens = new Map(items.map((it) => [it.id, randomBytes(12).toString("hex")]));
  const ids = [...tokens.keys()];
  const replies = await pipelined(
    deps,
    ids.map((id) => ["set", services.keys.cleanupLock(id), tokens.get(id), "PX", LOCK_TTL_MS, "NX"]),
  );
  const state = new Map(
    ids.map((id, k): [string, Result | "held"] => {
      const [err, res] = replies[k] ?? [null, null];
      return [id, err ?? (res === "OK" ? "held" : LOCKED)];
    }),
  );
  const held = items.filter((it) => state.get(it.id) === "held");
  const heldIds = ids.filter((id) => state.get(id) === "held");
  let results: Result[];
  try {
    results = held.length > 0 ? await fn(held) : [];
  } catch (err) {
    results = held.map(() => asError(err));
  } finally {
    await pipelined(
      deps,
      heldIds.map((id) => ["eval", RELEASE, 1, services.keys.cleanupLock(id), tokens.get(id)]),
    ).catch(() => undefined);
  }
  const byItem = new Map(held.map((it, k) => [it, results[k] as Result]));
  return items.map((it) => byItem.get(it) ?? (state.get(it.id) as Result));
}

/** Runs commands as one pipeline (one round trip); each reply is [error, result]. */
async function pipelined(deps: Deps, commands: unknown[][]): Promise<[Error | null, unknown][]> {
  if (commands.length === 0) return [];
  return (await deps.redis.pipeline(commands).exec()) ?? [];
}

/** Splits items into chunks of about `size`, never separating two items of the same task (they share its lock). */
function chunks<T extends { id: string }>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (const it of items) {
    const last = out[out.length - 1];
    if (last && (last.length < size || last[last.length - 1]?.id === it.id)) last.push(it);
    else out.push([it]);
  }
  return out;
}

const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));
const isFinal = (s: TaskStatus) => FINAL_STATUSES.includes(s);
const paths = (entries: readonly DiskEntry[]) => entries.flatMap((e) => (e.path ? [e.path] : []));

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
