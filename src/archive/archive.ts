// Archives a finished task's workspace to tar.gz: the entry that chooses a packer, writes into the archive store,
// verifies as it writes and publishes.
//
// Small, plain workspaces (the common case) are packed in-process by node-tar from an lstat listing
// (pack-inprocess.ts); large or unusual ones by GNU find + GNU tar (+ pigz for big ones) (pack-gnu.ts), not by
// node-tar's packer (see shared PITFALLS §3): node-tar's `c()` can hang forever on FIFOs/sockets, deadlocks on
// hardlinks across directories, aborts the whole pack on one non-UTF-8 name, one EACCES or one vanished file, and
// opens files by path without O_NOFOLLOW. Either packer writes its .tar.gz stream into a sink (sink.ts), hashing it
// on the way; each chunk goes both to the store's writer (a temp file, or a multipart upload) and to node-tar's
// parser (verify-stream.ts), so the archive is verified as it is written and published (renamed, or the upload
// completed) only once it has passed.
import { lstat } from "node:fs/promises";
import path from "node:path";
import { errnoOf, TaskFailure } from "../errors.js";
import type { ChangeSummary } from "../domain/manifest.js";
import type { ArchiveStore, ArchiveWriter } from "./archive-store.js";
import { ChangeLog, type StartState, storeCompanions } from "./changes.js";
import { listSmall, packInProcess } from "./pack-inprocess.js";
import { packGnu } from "./pack-gnu.js";
import { report, type SkippedPath } from "./packing.js";
import type { ArchiveSink } from "./sink.js";
import { ArchiveVerifier } from "./verify-stream.js";

const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3;

/** Options for {@link createArchive}. */
export interface ArchiveOptions {
  /**
   * Absolute path of the workspace directory. Its contents are untrusted (written by a container that has
   * exited), and nothing may change them while the archive is made.
   */
  workspacePath: string;
  /** Where the archive goes; it holds a complete, verified archive under `name` or nothing. */
  store: ArchiveStore;
  /** The archive's name in the store: the workspace's name (`task-<unix-ms>-<id>`). */
  name: string;
  /** Bound on the whole operation; on expiry children are killed, what was written is thrown away and `archive_failed` thrown. */
  timeoutMs: number;
  /** Regular files larger than this are left out and reported in `skipped`. Default 4 GiB. */
  maxFileBytes?: number;
  /** Aborting throws `TaskFailure("canceled")` (or the signal's reason if that is a TaskFailure). */
  signal?: AbortSignal;
  /**
   * Records the final workspace's manifest in the same pass (and, given the starting state, what changed since),
   * stored beside the archive (archive/changes.ts). Omitted: the archive alone.
   */
  changes?: { readonly start: StartState | null };
}

/** What {@link createArchive} produced. */
export interface ArchiveResult {
  /** Size of the .tar.gz file in bytes. */
  bytes: number;
  /** Hex sha256 of the .tar.gz file. */
  sha256: string;
  /** Number of tar entries (files, directories, symlinks, hardlinks). */
  entries: number;
  /** Paths left out (FIFOs, sockets, devices, oversized or unreadable files); at most 1000 are listed. */
  skipped: SkippedPath[];
  /** Sum of the archived regular files' sizes: what the workspace holds, without walking it again (cleanup). */
  contentBytes: number;
  /**
   * With `changes`: the summary (null without a start), and which companions could not be stored, with why (the
   * archive stands either way).
   */
  changes?: { summary: ChangeSummary | null; notStored: { manifest: string | null; changes: string | null } };
}

/**
 * Archives `workspacePath` into the store as `name` (tar.gz with relative entry names: node-tar's ustar/pax format for
 * small workspaces, GNU format for the others).
 * Never follows symlinks, never aborts on odd names or unreadable files (they are reported),
 * verifies the stream with node-tar as it is written and publishes it only once verified: the store never holds a
 * partial archive under `name`.
 * @throws TaskFailure `archive_failed` on timeout, write failure (ENOSPC, the store down...) or failed verification;
 *   `canceled` when `signal` aborts.
 */
export async function createArchive(opts: ArchiveOptions): Promise<ArchiveResult> {
  const { workspacePath, timeoutMs, store } = opts;
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!path.isAbsolute(workspacePath)) {
    throw new TaskFailure("archive_failed", "Archive paths must be absolute (internal error).");
  }
  if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 0) {
    throw new TaskFailure("archive_failed", `maxFileBytes must be a non-negative integer, got ${maxFileBytes}.`);
  }
  const deadline = abortAfter(timeoutMs, opts.signal);
  let writer: ArchiveWriter | undefined;
  try {
    deadline.signal.throwIfAborted();
    // lstat, not stat: a workspace path that is itself a symlink could point anywhere on the host.
    const st = await lstat(workspacePath);
    if (!st.isDirectory()) throw new TaskFailure("archive_failed", `Workspace ${workspacePath} is not a directory.`);
    writer = await store.begin(opts.name, deadline.signal);
    const out = writer;
    const log = opts.changes ? new ChangeLog(opts.changes.start) : null;
    const verifier = new ArchiveVerifier(log ? (e) => log.recorder.entry(e) : undefined);
    const sink: ArchiveSink = {
      write: async (chunk) => {
        verifier.write(chunk);
        await out.write(chunk);
      },
    };
    // A small, plain workspace is packed in-process; any other, or one node-tar refuses, by GNU find and tar.
    const small = await listSmall(workspacePath, maxFileBytes, deadline.signal);
    const observer = log?.recorder;
    const written =
      (small ? await packInProcess(workspacePath, small, sink, deadline.signal, observer) : null) ??
      (await packGnu(workspacePath, maxFileBytes, sink, deadline.signal, observer));
    const skipped = written.skipped;
    const known = new Set(skipped.map((s) => s.path));
    for (const s of written.unreadable) {
      if (known.has(s.path)) continue;
      known.add(s.path);
      report(skipped, s);
    }
    const { entries, contentBytes } = await verifier.end(deadline.signal);
    // Every listed name is in the archive, except those tar reported as unreadable.
    if (entries > written.listed || entries < written.listed - written.unreadable.length) {
      throw new TaskFailure("archive_failed", `The archive has ${entries} entries for ${written.listed} listed paths.`);
    }
    const recorded = await log?.finish();
    deadline.signal.throwIfAborted();
    await writer.commit({ bytes: written.bytes, sha256: written.sha256 });
    const result: ArchiveResult = { bytes: written.bytes, sha256: written.sha256, entries, skipped, contentBytes };
    if (recorded) {
      writer = undefined; // published: nothing to abort from here on
      result.changes = { summary: recorded.summary, notStored: await storeCompanions(store, opts.name, recorded, deadline.signal) };
    }
    return result;
  } catch (err) {
    await writer?.abort();
    throw toFailure(err, deadline.signal);
  } finally {
    deadline.dispose();
  }
}

/** One signal for timeout and caller cancellation; its reason is the TaskFailure to throw. */
function abortAfter(timeoutMs: number, outer?: AbortSignal): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const timeout = `Archiving the workspace took longer than ${timeoutMs} ms and was stopped.`;
  const timer = setTimeout(() => ac.abort(new TaskFailure("archive_failed", timeout)), timeoutMs);
  const onOuter = (): void =>
    ac.abort(outer?.reason instanceof TaskFailure ? outer.reason : new TaskFailure("canceled", "Archiving was canceled."));
  if (outer?.aborted) onOuter();
  else outer?.addEventListener("abort", onOuter, { once: true });
  return {
    signal: ac.signal,
    dispose: () => {
      clearTimeout(timer);
      outer?.removeEventListener("abort", onOuter);
    },
  };
}

function toFailure(err: unknown, signal: AbortSignal): TaskFailure {
  if (signal.aborted && signal.reason instanceof TaskFailure) return signal.reason;
  if (err instanceof TaskFailure) return err;
  const hint = errnoOf(err) === "ENOSPC" ? " The disk holding the archives is full." : "";
  const msg = err instanceof Error ? err.message : String(err);
  return new TaskFailure("archive_failed", `Could not archive the workspace: ${msg.replace(/\.$/, "")}.${hint}`, { cause: err });
}
