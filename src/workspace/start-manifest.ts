// The starting workspace's manifest: taken once `files` and the fromTask restore are written and before the
// container starts, so nothing untrusted has run in it yet (still: lstat, never a followed link, files opened
// with O_NOFOLLOW). A file's hash is not read again where it is already known: a `files` input is hashed from the
// spec's text, a restored file takes its hash from the fromTask's final manifest (the restore wrote exactly those
// bytes); only what neither says is read.
import { createHash } from "node:crypto";
import { constants, type Stats } from "node:fs";
import { lstat, open, opendir, readlink } from "node:fs/promises";
import path from "node:path";
import { comparePaths, type ManifestEntry, type ManifestEntryType } from "../domain/manifest.js";

export interface StartManifestOptions {
  /** Absolute path of the workspace. */
  readonly root: string;
  /** The task's `files` (relative path → UTF-8 text), written before the restore. */
  readonly files: Readonly<Record<string, string>>;
  /** Whether the task started from an earlier one: what was not in `files` came from its archive. */
  readonly fromTask: boolean;
  /** Files the restore wrote, with the size and hash the fromTask's manifest gives them. */
  readonly restored?: ReadonlyMap<string, { readonly size: number; readonly sha256: string | null }>;
  /** Gives up (returns null) past this many entries. */
  readonly maxEntries: number;
  readonly signal: AbortSignal;
}

/** What the read fallback costs at most at once: files hashed concurrently. */
const READ_CONCURRENCY = 4;

/** The manifest of the starting workspace in path order, or null past `maxEntries`. */
export async function takeStartManifest(opts: StartManifestOptions): Promise<ManifestEntry[] | null> {
  const entries: ManifestEntry[] = [];
  const toRead: { index: number; size: number }[] = [];
  const visit = async (dir: string): Promise<boolean> => {
    const names: string[] = [];
    for await (const d of await opendir(path.join(opts.root, dir))) names.push(dir === "" ? d.name : `${dir}/${d.name}`);
    const stats = await Promise.all(names.map((n) => lstat(path.join(opts.root, n))));
    opts.signal.throwIfAborted();
    for (const [i, rel] of names.entries()) {
      if (entries.length >= opts.maxEntries) return false;
      const st = stats[i] as Stats;
      const entry = await describe(opts, rel, st);
      if (entry.type === "file" && entry.sha256 === null) toRead.push({ index: entries.length, size: st.size });
      entries.push(entry);
      if (st.isDirectory() && !(await visit(rel))) return false;
    }
    return true;
  };
  if (!(await visit(""))) return null;
  for (let i = 0; i < toRead.length; i += READ_CONCURRENCY) {
    await Promise.all(
      toRead.slice(i, i + READ_CONCURRENCY).map(async ({ index }) => {
        const e = entries[index] as ManifestEntry;
        entries[index] = { ...e, sha256: await hashFile(path.join(opts.root, e.path), e.size, opts.signal) };
      }),
    );
  }
  return entries.sort((a, b) => comparePaths(a.path, b.path));
}

async function describe(opts: StartManifestOptions, rel: string, st: Stats): Promise<ManifestEntry> {
  const mode = st.mode & 0o7777;
  if (st.isDirectory()) return { path: rel, type: "dir", size: 0, mode, sha256: null };
  if (st.isSymbolicLink()) {
    const target = await readlink(path.join(opts.root, rel));
    return { path: rel, type: "symlink", size: Buffer.byteLength(target), mode: null, sha256: null, target };
  }
  if (!st.isFile()) {
    const type: ManifestEntryType = st.isFIFO() ? "fifo" : st.isSocket() ? "socket" : "device";
    return { path: rel, type, size: 0, mode: null, sha256: null };
  }
  const file = { path: rel, type: "file" as const, size: st.size, mode };
  // The restore came after `files`, so what it wrote is what is there.
  const known = opts.restored?.get(rel);
  if (known && known.size === st.size && known.sha256) return { ...file, sha256: known.sha256, from: "fromTask" };
  const text = opts.files[rel];
  if (typeof text === "string" && Buffer.byteLength(text) === st.size) {
    return { ...file, sha256: createHash("sha256").update(text, "utf8").digest("hex"), from: "files" };
  }
  return { ...file, sha256: null, from: opts.fromTask ? "fromTask" : "files" };
}

/** sha256 of a regular file, opened without following a link; null if it is not one (any more). */
async function hashFile(file: string, size: number, signal: AbortSignal): Promise<string | null> {
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
  if (!fh) return null;
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size !== size) return null;
    const hash = createHash("sha256");
    for await (const chunk of fh.createReadStream({ autoClose: false, signal })) hash.update(chunk as Buffer);
    return hash.digest("hex");
  } finally {
    await fh.close();
  }
}
