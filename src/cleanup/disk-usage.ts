// What lies in this host's workspace and archive roots, and how many bytes it uses. Read-only: nothing here
// follows a symbolic link or writes anything.
import { lstat, readdir } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { WORKSPACE_PATTERN } from "../domain/task.js";
import { POOL_DIR } from "../workspace/workspace.js";

/**
 * One directory entry of a root. `kind` says what berth makes of its name:
 * - `workspace`: `task-<13 digits>-<id>` in the workspace root;
 * - `archive`: `task-<13 digits>-<id>.tar.gz` in the archive root;
 * - `companion`: what the archive root keeps beside an archive and removes with it (`….manifest.gz`, `….changes.gz`,
 *   `….changes.tar.gz`: archive/archive-store.ts);
 * - `temp`: an archive (or companion) being written (`.task-….tar.gz.tmp-<hex>`), or one a crash left behind;
 * - `foreign`: anything else, including names that are not UTF-8. Berth never removes these.
 */
export interface DiskEntry {
  readonly root: "workspaces" | "archives";
  readonly kind: "workspace" | "archive" | "companion" | "temp" | "foreign";
  /** The name as printable text (bytes that are not UTF-8 shown as `\xNN`). */
  readonly name: string;
  /** Absolute path, or null when the name is not UTF-8 (such an entry is only ever reported). */
  readonly path: string | null;
  /** `task-<ms>-<id>` for workspaces and archives, else null. */
  readonly workspace: string | null;
  readonly taskId: string | null;
  readonly createdAtMs: number | null;
  readonly type: "dir" | "file" | "symlink" | "other" | "gone";
  readonly mtimeMs: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const ARCHIVE_NAME = /^(task-\d{13}-[A-Za-z0-9_-]{8,64})(\.tar\.gz|\.manifest\.gz|\.changes\.gz|\.changes\.tar\.gz)$/;
const TEMP_NAME = /^\.task-\d{13}-[A-Za-z0-9_-]{8,64}(\.tar\.gz|\.manifest\.gz|\.changes\.gz|\.changes\.tar\.gz)\.tmp-[0-9a-f]{16}$/;

/** Escapes a raw name for reports: printable ASCII as is, every other byte as `\xNN`. */
export function printableName(raw: Buffer): string {
  let out = "";
  for (const b of raw) out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
  return out;
}

/**
 * Entries of both roots (a missing root is empty). Entries are lstat'ed, never followed. The warm pool's directory
 * (`.pool`, its workers' empty directories) is not an entry: the workers that own it remove it.
 */
export async function listLocalEntries(dirs: { readonly workspaces: string; readonly archives: string }): Promise<DiskEntry[]> {
  const out: DiskEntry[] = [];
  for (const root of ["workspaces", "archives"] as const) {
    const dir = dirs[root];
    // Buffers, not strings: a name that is not UTF-8 would otherwise be mangled into one that does not exist.
    const raws = await readdir(dir, { encoding: "buffer" }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return [] as Buffer[];
      throw err;
    });
    // A loop, not push(...list): a root with a few hundred thousand entries would overflow the call stack.
    const listed = root === "workspaces" ? raws.filter((raw) => raw.toString("latin1") !== POOL_DIR) : raws;
    for (const entry of await Promise.all(listed.map((raw) => describe(root, dir, raw)))) out.push(entry);
  }
  return out;
}

async function describe(root: DiskEntry["root"], dir: string, raw: Buffer): Promise<DiskEntry> {
  let name: string | null;
  try {
    name = utf8.decode(raw);
  } catch {
    name = null;
  }
  const st = await lstat(Buffer.concat([Buffer.from(dir + path.sep), raw])).catch(() => null);
  const type: DiskEntry["type"] = !st
    ? "gone"
    : st.isSymbolicLink()
      ? "symlink"
      : st.isDirectory()
        ? "dir"
        : st.isFile()
          ? "file"
          : "other";
  const base = {
    root,
    name: name ?? printableName(raw),
    path: name === null ? null : path.join(dir, name),
    type,
    mtimeMs: st?.mtimeMs ?? 0,
  };
  const stored = name === null || root === "workspaces" ? null : ARCHIVE_NAME.exec(name);
  const ws = name === null ? null : root === "workspaces" ? (WORKSPACE_PATTERN.test(name) ? name : null) : (stored?.[1] ?? null);
  const m = ws ? WORKSPACE_PATTERN.exec(ws) : null;
  if (ws && m) {
    return {
      ...base,
      kind: root === "workspaces" ? "workspace" : stored?.[2] === ".tar.gz" ? "archive" : "companion",
      workspace: ws,
      taskId: m[2] ?? null,
      createdAtMs: Number(m[1]),
    };
  }
  const kind = name !== null && root === "archives" && TEMP_NAME.test(name) ? "temp" : "foreign";
  return { ...base, kind, workspace: null, taskId: null, createdAtMs: null };
}

/**
 * Bytes on disk (allocated blocks, not apparent size: the budget is about the disk) of each path, as GNU `du`
 * counts them: symbolic links are not followed (`-P`, the default), other filesystems are not entered, and a
 * hard-linked file counts once across all the paths of one call. A missing path is absent from the result.
 * One `du` process per 500 paths; unreadable parts are counted as far as `du` can see.
 */
export async function diskUsage(paths: readonly string[]): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (let i = 0; i < paths.length; i += 500) {
    const chunk = paths.slice(i, i + 500);
    // -0: NUL-terminated lines, so no path can break the parsing. `--` ends options whatever a path starts with.
    const res = await execa("du", ["-s", "-0", "-P", "--block-size=1", "--one-file-system", "--", ...chunk], {
      reject: false,
      encoding: "utf8",
    });
    for (const line of res.stdout.split("\0")) {
      const tab = line.indexOf("\t");
      if (tab > 0) sizes.set(line.slice(tab + 1), Number(line.slice(0, tab)));
    }
  }
  return sizes;
}
