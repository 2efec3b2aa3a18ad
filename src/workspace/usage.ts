// How much a workspace holds, measured from outside the container while it runs (the disk limit's watcher) and
// once after it exits.
import { execa } from "execa";

/** Every entry is charged at least this much: an inode and a directory entry cost a block even when empty. */
export const MIN_ENTRY_BYTES = 4096;

/**
 * One pass of GNU find (never follows links, stays on one filesystem, copes with any name and depth) summed by
 * awk, so a tree of any size costs the server no memory: each entry counts for the larger of its size and the
 * disk space it takes (a sparse file counts at its full size, since archiving reads it all; a small file at its
 * blocks), and at least {@link MIN_ENTRY_BYTES}. Hard links count once per name.
 */
const SUM = `{ s = $1; b = $2 * 512; if (b > s) s = b; if (s < ${MIN_ENTRY_BYTES}) s = ${MIN_ENTRY_BYTES}; t += s; n++ } END { printf "%.0f %d\\n", t, n }`;

export interface WorkspaceUsage {
  /** Bytes by the rule above. */
  readonly bytes: number;
  /** Files, directories and links, the workspace itself included. */
  readonly entries: number;
}

/**
 * Measures `dir` (whose contents are untrusted: only sizes are read, nothing is opened or followed). Entries that
 * cannot be read are left out. Rejects when the walk fails outright or `signal` aborts.
 */
export async function measureWorkspace(dir: string, signal?: AbortSignal): Promise<WorkspaceUsage> {
  const res = await execa("sh", ["-c", `find "$1" -xdev -printf '%s %b\\n' 2>/dev/null | awk "$2"`, "sh", dir, SUM], {
    cancelSignal: signal,
    forceKillAfterDelay: 1000,
  });
  const [bytes, entries] = res.stdout.trim().split(" ").map(Number);
  if (!Number.isFinite(bytes) || !Number.isFinite(entries)) throw new Error(`could not measure ${dir}: ${res.stdout.slice(0, 200)}`);
  return { bytes: bytes as number, entries: entries as number };
}

/**
 * What a fresh workspace holds after its `files` were written, by the rule above, without walking it: the
 * workspace, each file (its size in whole blocks, at least one) and each directory the paths name.
 */
export function inputBytes(files: Readonly<Record<string, string>>): number {
  const block = (n: number) => Math.max(MIN_ENTRY_BYTES, Math.ceil(n / MIN_ENTRY_BYTES) * MIN_ENTRY_BYTES);
  const dirs = new Set<string>();
  let bytes = MIN_ENTRY_BYTES;
  for (const [rel, content] of Object.entries(files)) {
    bytes += block(Buffer.byteLength(content, "utf8"));
    const parts = rel.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return bytes + dirs.size * MIN_ENTRY_BYTES;
}
