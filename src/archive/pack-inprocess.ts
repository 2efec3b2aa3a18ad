// The in-process packer, for small, plain workspaces (the common case): no process to start. The workspace is
// listed first, and node-tar's synchronous packer only gets an explicit list of directories, symlinks and
// single-link regular files with valid UTF-8 names, together with the lstat results of that listing, so none of
// node-tar's known traps (shared PITFALLS §3: FIFOs, hardlinks across directories, odd names, following links) can
// reach it. Anything else, or any refusal, sends the workspace to the GNU packer (pack-gnu.ts).
import type { Stats } from "node:fs";
import { lstat, opendir } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { PackSync } from "tar";
import { comparePaths } from "../domain/manifest.js";
import { type ListingObserver, type PackedArchive, report, SPECIAL_TYPES, type SkippedPath, tooLarge } from "./packing.js";
import { type ArchiveSink, writeArchiveStream } from "./sink.js";

/** Bounds of the in-process path; a workspace beyond any of them is archived by GNU find and tar. Exported for tests. */
export const IN_PROCESS_LIMITS = { entries: 256, bytes: 1024 * 1024, pathBytes: 1024 } as const;

const gzipAsync = promisify(gzip);

/** A small, plain workspace: what to archive (relative names, in path order) with their lstat results, and what not. */
export interface SmallListing {
  names: string[];
  /** lstat of every name, keyed by absolute path (node-tar's statCache), so node-tar archives exactly what was listed. */
  stats: Map<string, Stats>;
  skipped: SkippedPath[];
  /** Every path left out, with find's type letter (f for a file over the size bound) and size, in path order. */
  left: { path: string; type: string; size: number }[];
}

/**
 * Lists the workspace if it is small and plain (IN_PROCESS_LIMITS): few paths, each name valid UTF-8 and not one
 * node-tar would rewrite, short paths, regular files with one link and few bytes in all.
 * FIFOs, sockets, devices and files over `maxFileBytes` are left out and reported, as on the GNU path. Returns
 * null for anything else (including unreadable directories), which then takes the GNU path.
 */
export async function listSmall(root: string, maxFileBytes: number, signal: AbortSignal): Promise<SmallListing | null> {
  const listing: SmallListing = { names: [], stats: new Map(), skipped: [], left: [] };
  let seen = 0;
  let bytes = 0;
  const visit = async (dir: string): Promise<boolean> => {
    const names: string[] = [];
    for await (const entry of await opendir(path.join(root, dir))) {
      // Invalid UTF-8 decodes to U+FFFD; such a name only survives GNU tar, which keeps names as bytes.
      if (++seen > IN_PROCESS_LIMITS.entries || entry.name.includes("\uFFFD")) return false;
      names.push(dir === "" ? entry.name : `${dir}/${entry.name}`);
    }
    const stats = await Promise.all(names.map((name) => lstat(path.resolve(root, name))));
    signal.throwIfAborted();
    for (const [i, name] of names.entries()) {
      const st = stats[i] as Stats;
      // node-tar strips what Windows would call a root ("c:", "//x/y/") from a name; GNU tar keeps it.
      if (Buffer.byteLength(name) > IN_PROCESS_LIMITS.pathBytes || path.win32.isAbsolute(name) || path.win32.parse(name).root !== "")
        return false;
      if (st.isFile() && st.size > maxFileBytes) {
        report(listing.skipped, { path: name, why: tooLarge(maxFileBytes, st.size) });
        listing.left.push({ path: name, type: "f", size: st.size });
      } else if (st.isFile() || st.isDirectory() || st.isSymbolicLink()) {
        if (st.isFile()) {
          bytes += st.size;
          // Hardlinks are left to GNU tar, which stores them as links.
          if (st.nlink > 1 || bytes > IN_PROCESS_LIMITS.bytes) return false;
        }
        listing.names.push(name);
        listing.stats.set(path.resolve(root, name), st);
        if (st.isDirectory() && !(await visit(name))) return false;
      } else {
        const type = st.isFIFO() ? "p" : st.isSocket() ? "s" : st.isBlockDevice() ? "b" : "c";
        report(listing.skipped, { path: name, why: `${SPECIAL_TYPES[type]} not archived` });
        listing.left.push({ path: name, type, size: 0 });
      }
    }
    return true;
  };
  try {
    if (!(await visit(""))) return null;
    // The order GNU find | sort gives (domain/manifest.ts): a directory still comes before what it holds.
    listing.names.sort(comparePaths);
    listing.left.sort((a, b) => comparePaths(a.path, b.path));
    return listing;
  } catch (err) {
    if (signal.aborted) throw err;
    return null; // unreadable or unexpected: GNU tar reports per file what it cannot read
  }
}

/**
 * Packs a small listing with node-tar's synchronous packer (bounded by the listing's limits), gzips it with
 * node:zlib and writes it into `sink`. Returns null if node-tar refuses anything (strict mode), before writing
 * (and before `observer` hears of anything).
 */
export async function packInProcess(
  root: string,
  listing: SmallListing,
  sink: ArchiveSink,
  signal: AbortSignal,
  observer?: ListingObserver,
): Promise<PackedArchive | null> {
  let tarBytes: Buffer;
  try {
    const chunks: Buffer[] = [];
    let failed: unknown;
    // noDirRecurse: exactly the listed names; statCache: the listing's lstat results, so nothing is looked up again.
    const pack = new PackSync({ cwd: root, noDirRecurse: true, strict: true, statCache: listing.stats });
    pack.on("data", (chunk: Buffer) => chunks.push(chunk));
    pack.on("error", (err: unknown) => (failed ??= err));
    // add(), not tar.c(): c() reads a name starting with "@" as another archive to copy in.
    for (const name of listing.names) pack.add(name);
    pack.end();
    if (failed !== undefined) throw failed;
    tarBytes = Buffer.concat(chunks);
  } catch {
    return null;
  }
  for (const l of listing.left) observer?.left(l.path, l.type, l.size);
  const written = await writeArchiveStream(Readable.from([await gzipAsync(tarBytes)]), sink, signal);
  return { ...written, listed: listing.names.length, skipped: listing.skipped, unreadable: [] };
}
