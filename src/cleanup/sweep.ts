// One cleanup pass over this host's disk: expires finished tasks whose time has come (workspace, archive and
// log stream removed, record kept as `expired` so clients get 410), purges expired records after
// RECORD_RETENTION_MS, and reports everything it would not touch. Run by the scheduler (schedule.ts) and by
// `berth workspace clean`.
//
// A pass gathers what is there (entries on disk, due ids, records), plans (sweep-plan.ts: pure, where the safety
// rules live), sizes the plan, carries it out (sweep-execute.ts: locks, re-reads, removal, records) and reports.
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import type { TaskRecord } from "../domain/task.js";
import { diskUsage, listLocalEntries } from "./disk-usage.js";
import { carryOut, purgeRecords, removeTasks, type Result, underLocks } from "./sweep-execute.js";
import {
  type DiskReport,
  fitBudget,
  type Outcome,
  pathsToMeasure,
  planSweep,
  type Removal,
  type RemovalReason,
  refuseByHand,
  type SweepOptions,
  type SweepSkip,
  taskIds,
} from "./sweep-plan.js";

export {
  DEFAULT_ORPHAN_AGE_MS,
  RECORD_RETENTION_MS,
  type RemovalReason,
  type SkipReason,
  type SweepOptions,
  type SweepSkip,
} from "./sweep-plan.js";

const MAX_DUE_PER_PASS = 20_000;
/** An unfinished upload this much older than the archive timeout is abandoned. */
const STALE_UPLOAD_MARGIN_MS = 10 * 60_000;
/** Records are read this many per round trip while gathering. */
const READ_CHUNK = 1000;

/** A task (or record-less entry) whose workspace, archive and log stream a pass removed. */
export interface SweepRemoval {
  readonly taskId: string;
  readonly workspace: string;
  readonly tenant: string | null;
  readonly why: RemovalReason;
  /** Bytes on disk of the files below, measured before removal. */
  readonly bytes: number;
  /**
   * Absolute paths of the workspace and/or archive that were (or, in a dry run, would be) removed; an archive in an
   * object store all hosts share as its `s3://` URL.
   */
  readonly files: readonly string[];
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
  disk: DiskReport | null;
  /** True when more tasks were due than one pass handles; the next pass continues. */
  more: boolean;
  /** Unfinished multipart uploads of the archive store aborted (left by a writer that died, or a store that was down). */
  uploadsAborted: number;
}

/** Runs one cleanup pass. Never throws for a single item: its failure is in `errors`. */
export async function sweep(deps: Deps, services: Services, opts: SweepOptions = {}): Promise<SweepResult> {
  const now = opts.now ?? Date.now();
  const dryRun = opts.dryRun ?? false;
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
    uploadsAborted: 0,
  };
  log.info(
    { event: "cleanup.start", now, olderThanMs: opts.olderThanMs ?? null, all: opts.all ?? false, orphans: opts.orphans ?? false },
    "cleanup pass starting",
  );
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
  /** Reports an item's outcome: its error, why it was left alone, or (`removed`) what `onRemoved` says. */
  const report = (item: string, taskId: string, outcome: Result, onRemoved: () => void) => {
    if (outcome instanceof Error) fail(item, taskId, outcome);
    else if (outcome !== "removed") skip({ item, taskId, ...outcome });
    else onRemoved();
  };

  // Gather.
  const entries = await listLocalEntries(deps.config.dirs);
  const due = await services.expiry.due(now, MAX_DUE_PER_PASS);
  result.more = due.length === MAX_DUE_PER_PASS;
  const records = await readRecords(services, taskIds(entries, due));

  // Plan, then size.
  const plan = planSweep({ now, host: deps.host, sharedArchives: deps.archives.shared, entries, due, records, options: opts });
  for (const s of plan.skips) skip(s);
  const budget = deps.config.diskBudgetBytes;
  const measured = pathsToMeasure(plan, entries, budget);
  const sizes = measured.length > 0 ? await diskUsage(measured) : new Map<string, number>();
  const { removals, disk } = fitBudget(plan, sizes, budget);
  result.disk = disk;

  // Carry out, reported in plan order (expiry, then the budget's oldest first).
  const outcomes = await carryOut(services, dryRun, removals, (held) => removeTasks(deps, services, held, now));
  for (const r of removals) {
    report(r.workspace || `task ${r.id}`, r.id, outcomes.get(r) as Result, () => {
      const files = withStoredArchive(deps, r);
      result.removed.push({ taskId: r.id, workspace: r.workspace, tenant: r.record?.tenant ?? null, why: r.why, bytes: r.bytes, files });
      result.bytesReclaimed += r.bytes;
      log.info(
        { event: "cleanup.removed", taskId: r.id, workspace: r.workspace, why: r.why, bytes: r.bytes, files },
        dryRun ? "would remove task files" : "removed task files",
      );
    });
  }
  const purgeItems = plan.purges.map((id) => ({ id }));
  const purged = await carryOut(services, dryRun, purgeItems, (held) =>
    purgeRecords(
      services,
      held.map((x) => x.id),
      now,
    ),
  );
  for (const it of purgeItems) {
    report(`task ${it.id}`, it.id, purged.get(it) as Result, () => {
      result.purged.push(it.id);
      log.info({ event: "cleanup.purged", taskId: it.id }, dryRun ? "would delete expired task record" : "deleted expired task record");
    });
  }
  if (!dryRun) {
    // No archive is written for longer than its timeout: an upload older than that (and a margin) was abandoned.
    const before = now - deps.config.worker.archiveTimeoutSeconds * 1000 - STALE_UPLOAD_MARGIN_MS;
    result.uploadsAborted = await deps.archives.abortStaleUploads(before).catch((err: unknown) => {
      fail("unfinished uploads", null, err);
      return 0;
    });
    for (const fix of plan.indexFixes)
      await services.expiry.fix(fix).catch((err: unknown) => log.warn({ err }, "expiry index repair failed"));
  }

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
      uploadsAborted: result.uploadsAborted,
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
  const files = entries.flatMap((e) => (e.path ? [e.path] : []));
  const sizes = files.length > 0 ? await diskUsage(files) : new Map<string, number>();
  const plan: Removal = {
    id: record.id,
    workspace: record.workspace,
    record,
    why: record.status === "expired" ? "leftover" : "manual",
    files,
    bytes: files.reduce((n, f) => n + (sizes.get(f) ?? 0), 0),
  };
  const removal = {
    taskId: plan.id,
    workspace: plan.workspace,
    tenant: record.tenant,
    why: plan.why,
    bytes: plan.bytes,
    files: withStoredArchive(deps, plan),
  };
  let outcome = refuseByHand(record, deps.host) ?? (opts.dryRun ? "removed" : null);
  if (outcome === null) {
    const [done] = await underLocks(services, [plan], (held) => removeTasks(deps, services, held, opts.now ?? Date.now()));
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

/** A removal's files, and its archive's object in a shared store (not among the entries of this host's disk). */
function withStoredArchive(deps: Deps, r: Removal): readonly string[] {
  return deps.archives.shared && r.record?.archive ? [...r.files, deps.archives.locate(r.workspace)] : r.files;
}

/** Every task's record, read in chunks of one round trip each: the record, null when there is none, or an Error. */
async function readRecords(services: Services, ids: readonly string[]): Promise<Map<string, TaskRecord | null | Error>> {
  const out = new Map<string, TaskRecord | null | Error>();
  for (let i = 0; i < ids.length; i += READ_CHUNK) {
    const chunk = ids.slice(i, i + READ_CHUNK);
    const records = await services.store.getMany(chunk);
    chunk.forEach((id, k) => {
      out.set(id, records[k] ?? null);
    });
  }
  return out;
}
