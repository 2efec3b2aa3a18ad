// Carries out a cleanup plan (sweep-plan.ts) through the stores: each task under its cleanup lock, re-read under
// it; files go first, the record becomes `expired` only after they are gone, so a crash half-way is simply retried
// by the next pass. Deletion is GNU `rm -rf --one-file-system` (workspace.ts removeTrees): no symbolic link is
// ever followed; archives are deleted through the archive store.
//
// Tasks are handled in chunks: per chunk, one Redis round trip takes all the locks, one re-reads all the records,
// one `rm` process removes all the files, and a few round trips finish. A few chunks are in flight at once, so
// that rm processes run side by side and overlap with the Redis work of other chunks.
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import type { TaskRecord } from "../domain/task.js";
import type { HeldLock } from "../store/cleanup-locks.js";
import { removeTrees, workspacePath } from "../workspace/workspace.js";
import { ENDED, expiredFields, type Outcome, purgeable, RECORD_RETENTION_MS, recheck, type Removal } from "./sweep-plan.js";

/** What became of one item: an Error means it failed and stays for the next pass. */
export type Result = Outcome | Error;

const LOCK_TTL_MS = 15 * 60_000;
// Tasks per chunk (one rm process removes a chunk's workspaces, another its archives), and chunks in flight at once.
const CHUNK = 128;
const CHUNKS_IN_FLIGHT = 4;
const LOCKED: Outcome = { reason: "locked", detail: "another cleanup is handling it" };

/**
 * Carries out items chunk by chunk, a few chunks at once, each under its tasks' locks (underLocks); in a dry run
 * nothing is done and every item counts as "removed".
 */
export async function carryOut<T extends { id: string }>(
  services: Services,
  dryRun: boolean,
  items: readonly T[],
  fn: (held: T[]) => Promise<Result[]>,
): Promise<Map<T, Result>> {
  const out = new Map<T, Result>();
  if (dryRun) for (const it of items) out.set(it, "removed");
  else {
    await forEachLimit(chunks(items, CHUNK), CHUNKS_IN_FLIGHT, async (chunk) => {
      const done = await underLocks(services, chunk, fn).catch((err: unknown) => chunk.map(() => asError(err)));
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
export async function underLocks<T extends { id: string }>(
  services: Services,
  items: readonly T[],
  fn: (held: T[]) => Promise<Result[]>,
): Promise<Result[]> {
  const ids = [...new Set(items.map((it) => it.id))];
  const taken = await services.locks.acquire(ids, LOCK_TTL_MS);
  const state = new Map(ids.map((id, k): [string, Result | HeldLock] => [id, taken[k] ?? LOCKED]));
  const isHeld = (s: Result | HeldLock | undefined): s is HeldLock => typeof s === "object" && s !== null && "token" in s;
  const held = items.filter((it) => isHeld(state.get(it.id)));
  const locks = [...state.values()].filter(isHeld);
  let results: Result[];
  try {
    results = held.length > 0 ? await fn(held) : [];
  } catch (err) {
    results = held.map(() => asError(err));
  } finally {
    await services.locks.release(locks).catch(() => undefined);
  }
  const byItem = new Map(held.map((it, k) => [it, results[k] as Result]));
  return items.map((it) => byItem.get(it) ?? (state.get(it.id) as Result));
}

/**
 * Carries out removals whose tasks' locks are held (underLocks): re-reads and re-checks the records, removes the
 * files (workspaces in one `rm`, then the archives of those whose workspace is gone), then the log streams, and
 * only then marks the records expired, so a crash half-way leaves tasks the next pass simply retries. Returns
 * each removal's outcome, in order.
 */
export async function removeTasks(deps: Deps, services: Services, removals: readonly Removal[], now: number): Promise<Result[]> {
  const { store } = services;
  const { dirs } = deps.config;
  const out: (Result | null)[] = removals.map(() => null);
  const open = () => removals.flatMap((_, i) => (out[i] === null ? [i] : []));
  const removal = (i: number) => removals[i] as Removal;

  // Orphans: a record (even an unreadable one) appearing since planning means hands off.
  const orphans = open().filter((i) => removal(i).why === "orphan");
  const tracked = open().filter((i) => removal(i).why !== "orphan");
  const [records, exist] = await Promise.all([
    store.getMany(tracked.map((i) => removal(i).id)),
    store.existsMany(orphans.map((i) => removal(i).id)),
  ]);
  orphans.forEach((i, k) => {
    const e = exist[k] ?? false;
    if (e instanceof Error) out[i] = e;
    else if (e) out[i] = { reason: "changed", detail: "a task record appeared; left alone" };
  });
  const fresh = new Map<number, TaskRecord>();
  tracked.forEach((i, k) => {
    const r = records[k] ?? null;
    if (r instanceof Error) out[i] = r;
    else out[i] = recheck(removal(i), r, deps.host);
    if (r && !(r instanceof Error) && out[i] === null) fresh.set(i, r);
  });

  const go = open();
  const ws = (i: number) => workspacePath(dirs.workspaces, removal(i).workspace);
  // Workspaces first; an archive only once its workspace is gone, so a task left as it was (its workspace could
  // not be removed) still has the archive its record lists. Archives go through the store (a file here, or an
  // object every host shares; a missing one is not an error).
  const wsFailed = await removeTrees(go.map(ws));
  const arFailed = await deps.archives.remove(go.filter((i) => !wsFailed.has(ws(i))).map((i) => removal(i).workspace));
  for (const i of go) out[i] = wsFailed.get(ws(i)) ?? arFailed.get(removal(i).workspace) ?? null;

  const logs = open();
  const unlinked = await Promise.all(logs.map((i) => services.logs.remove(removal(i).id).then(() => null, asError)));
  logs.forEach((i, k) => {
    out[i] = unlinked[k] ?? null;
  });

  // Files and logs are gone; only now do the records say so.
  const marks = open().filter((i) => fresh.has(i) && removal(i).why !== "leftover");
  const applied = await store.transitionMany(
    marks.map((i) => {
      const r = fresh.get(i) as TaskRecord;
      const fields = expiredFields(r, removal(i).why, now);
      return { id: r.id, tenant: r.tenant, from: ENDED, fields, expiryScore: (fields.expiresAtMs ?? now) + RECORD_RETENTION_MS };
    }),
  );
  marks.forEach((i, k) => {
    const a = applied[k] ?? null;
    out[i] = a === true ? "removed" : a instanceof Error ? a : { reason: "changed", detail: `task is now ${a ?? "gone"}` };
  });
  // Their files are gone: they no longer count to their tenants' stored bytes (once; a retry changes nothing).
  const gone = [...fresh].flatMap(([i, r]) => (out[i] === "removed" || out[i] === null ? [r] : []));
  await services.usage
    .debit(gone)
    .catch((err: unknown) => deps.logger.warn({ err }, "stored bytes not updated after cleanup; the record's purge retries"));
  for (const i of open()) out[i] = "removed";
  return out as Result[];
}

/** Under the tasks' locks: deletes expired records (and what is left of their logs) whose retention is over. */
export async function purgeRecords(services: Services, ids: readonly string[], now: number): Promise<Result[]> {
  const records = await services.store.getMany(ids);
  return Promise.all(
    ids.map(async (id, k): Promise<Result> => {
      const fresh = records[k] ?? null;
      if (fresh instanceof Error) return fresh;
      if (!purgeable(fresh, now)) return { reason: "changed", detail: `task is now ${fresh?.status ?? "gone"}` };
      try {
        await services.logs.remove(id);
        await services.usage.debit([fresh as TaskRecord]);
        await services.store.remove(fresh as TaskRecord);
        return "removed";
      } catch (err) {
        return asError(err);
      }
    }),
  );
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

export const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
