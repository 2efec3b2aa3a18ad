// Where finished workspaces' archives live: a port, like runner/container-runtime.ts. The rest of berth writes,
// reads and deletes archives through it, and does not care whether they sit in this host's BERTH_ARCHIVE_DIR
// (archive/local-store.ts) or in an S3-compatible bucket every host shares (archive/s3-store.ts).
//
// An archive is named after its workspace (`task-<unix-ms>-<id>`), and is either complete and verified or absent:
// a writer publishes nothing until `commit`, and `abort` leaves nothing behind (no temp file, no multipart upload).
// Beside it the store keeps its companions (StoredKind), written and read the same way and removed with it.
import type { Readable } from "node:stream";
import { WORKSPACE_PATTERN } from "../domain/task.js";

/**
 * What is stored under a workspace's name: its archive, and the companions made from it (archive/changes.ts),
 * removed with it: the final workspace's manifest, the change list, and the change-only archive once asked for.
 */
export type StoredKind = "archive" | "manifest" | "changes" | "delta";

/** The file (or object) name suffix of each kind; a name is `<workspace><suffix>`. */
export const STORED_SUFFIX: Readonly<Record<StoredKind, string>> = {
  archive: ".tar.gz",
  manifest: ".manifest.gz",
  changes: ".changes.gz",
  delta: ".changes.tar.gz",
};
export const STORED_KINDS = Object.keys(STORED_SUFFIX) as StoredKind[];

/** `<workspace><suffix>`, refusing any workspace name berth does not make (it becomes a path or a key). */
export function storedName(workspace: string, kind: StoredKind = "archive"): string {
  if (!WORKSPACE_PATTERN.test(workspace)) throw new Error(`not a workspace name: ${JSON.stringify(workspace)}`);
  return `${workspace}${STORED_SUFFIX[kind]}`;
}

/** Receives an archive's compressed bytes as they are made, then publishes them or throws them away. */
export interface ArchiveWriter {
  /** Appends bytes; resolves once they are taken (back-pressure). Rejects once the store has failed. */
  write(chunk: Buffer): Promise<void>;
  /** Publishes the archive, every byte written and verified; `sha256` is also stored with it where the store can. */
  commit(written: { readonly bytes: number; readonly sha256: string }): Promise<void>;
  /** Throws away what was written; nothing of it stays visible or stored. Never rejects. */
  abort(): Promise<void>;
}

/** Bytes `start` to `end` (inclusive) of an archive. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** An archive (or a range of it) being read. */
export interface ArchiveRead {
  readonly stream: Readable;
  /** Size of the whole stored archive in bytes (not of the range). */
  readonly size: number;
}

export interface ArchiveStore {
  readonly kind: "local" | "s3";
  /** For messages and /readyz: the directory, or `s3://bucket/prefix` and its endpoint. Never a secret. */
  readonly description: string;
  /** Whether every host sees the same archives (an object store), or only the host that wrote them (a directory). */
  readonly shared: boolean;
  /** Starts writing the archive of `workspace` (or a companion); nothing is visible under that name before `commit`. */
  begin(workspace: string, signal: AbortSignal, kind?: StoredKind): Promise<ArchiveWriter>;
  /** Streams the archive (or a companion), or a range of it; null when there is none. */
  read(workspace: string, range?: ByteRange, signal?: AbortSignal, kind?: StoredKind): Promise<ArchiveRead | null>;
  /**
   * A file on this host holding the archive, for the readers that need one (fromTask extraction reads it twice):
   * the archive itself for a directory, a private temporary copy for an object store. Null when there is none.
   */
  localCopy(workspace: string, signal: AbortSignal): Promise<{ readonly path: string; dispose(): Promise<void> } | null>;
  /**
   * Removes archives with their companions; one that is not there counts as removed. Returns those that could not
   * be removed, with why.
   */
  remove(workspaces: readonly string[]): Promise<Map<string, Error>>;
  /**
   * Aborts multipart uploads begun before `beforeMs` and never completed nor aborted (their writer died, or the
   * store was down when it tried), so their parts stop taking space. Returns how many; 0 for a directory, whose
   * leftover temp files cleanup reports instead.
   */
  abortStaleUploads(beforeMs: number): Promise<number>;
  /** Where the archive of `workspace` (or a companion) lives, for reports: a path or an `s3://` URL. */
  locate(workspace: string, kind?: StoredKind): string;
  /** Resolves when the store answers; otherwise throws an error that says which store and why (a timeout included). */
  check(timeoutMs: number): Promise<void>;
  close(): void;
}
