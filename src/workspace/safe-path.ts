// Reading a task's workspace without ever following a link the task planted.
//
// Threat model: the workspace is bind-mounted read-write into an untrusted container that may still be
// running. The container can create symlinks (to host paths, which resolve on the host when WE follow
// them), FIFOs (an open or read would block us), and can rename/swap entries between any two syscalls
// we make. The server runs as root, so permissions do not protect host files: only never following links does.
//
// Rule enforced here: a path that is, or passes through, a symbolic link, or leaves the workspace, is
// refused as `not_found` (the API answers 404 for it, whatever the link points to).
//
// Race defence: `open(2)` with O_NOFOLLOW only protects the last component, so after opening we ask the
// kernel where the descriptor really is (`readlink /proc/self/fd/N`) and require exactly
// `realpath(root) + "/" + rel`. The kernel reports the opened object's actual location, which contains no
// symlinks; if any parent was swapped for a link, that location differs and we close and refuse. The task
// cannot move a host file into its workspace (it cannot see one, and rename across mounts fails), so a
// matching location means the object really is the workspace file.
import { constants } from "node:fs";
import { lstat, open, opendir, readlink, realpath, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { BerthError, errnoOf } from "../errors.js";

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_NOCTTY, O_DIRECTORY } = constants;
/** O_NONBLOCK: a FIFO swapped in after our lstat must not block the open. O_NOCTTY: a tty never becomes ours. */
const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
const DIR_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_DIRECTORY;

const MAX_COMPONENT_BYTES = 255;
const MAX_PATH_BYTES = 4096;
/** Errors that mean "there is no such (followable) file here"; all become 404. Anything else is a server problem. */
const MISSING = new Set(["ENOENT", "ENOTDIR", "ELOOP", "EACCES", "EPERM", "ENXIO", "ENAMETOOLONG", "EISDIR"]);
/**
 * Percent-escapes left over after the framework's one decoding: `%2e` (.), `%2f` (/), `%5c` (\), `%00`, any of
 * them double-encoded (`%252e`), and overlong UTF-8 leads (`%c0%ae`) that lenient decoders turn into `.` or `/`.
 * Some proxy or client decoding once more would turn these into traversal, so they are refused outright.
 */
const ENCODED_TRAVERSAL = /%(?:25)*(?:2e|2f|5c|00|c0|c1|e0%80)/i;
/** A lone UTF-16 surrogate would be written as U+FFFD on the way to the kernel, naming a different file. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** A path the files API cannot or will not serve: 404, whether missing, through a link or outside the workspace. */
export const notFound = (rel: string, why: string): BerthError =>
  new BerthError("not_found", `No file "${rel}" in this workspace (${why}). List it with GET /v1/tasks/:id/files.`, {
    path: rel,
  });

/**
 * Validates a client-supplied workspace-relative path (already URL-decoded once) and splits it into components.
 *
 * Errors, chosen so that anything that could aim outside the workspace is indistinguishable from a missing file:
 * - `not_found` (404): traversal or escape attempts: a `..` or `.` component, an absolute path, a backslash,
 *   a NUL byte, or percent-escapes that a second decoding would turn into any of those (`%2e%2e`, `%252f`).
 * - `invalid_input` (400): malformed but harmless: not a string, empty components (`a//b`; one trailing `/` is
 *   allowed and ignored), lone surrogates, a component over 255 bytes or a path over 4096 bytes (UTF-8).
 *
 * The empty string returns `[]` (the workspace root).
 */
export function parseRelativePath(raw: string): string[] {
  if (typeof raw !== "string") throw new BerthError("invalid_input", "A file path must be a string.");
  if (raw === "") return [];
  if (raw.startsWith("/")) throw notFound(raw, "absolute paths are not allowed");
  if (raw.includes("\0") || raw.includes("\\")) throw notFound(raw, "NUL bytes and backslashes are not allowed");
  if (ENCODED_TRAVERSAL.test(raw)) throw notFound(raw, "percent-encoded dots or separators are not allowed");
  if (Buffer.byteLength(raw, "utf8") > MAX_PATH_BYTES) {
    throw new BerthError("invalid_input", `A file path may be at most ${MAX_PATH_BYTES} bytes.`, { path: raw.slice(0, 200) });
  }
  if (LONE_SURROGATE.test(raw)) throw new BerthError("invalid_input", "A file path must be valid Unicode.");
  const parts = raw.split("/");
  if (parts.length > 1 && parts[parts.length - 1] === "") parts.pop(); // one trailing slash: "dir/"
  for (const part of parts) {
    if (part === "." || part === "..") throw notFound(raw, `"${part}" components are not allowed`);
  }
  for (const part of parts) {
    if (part === "") throw new BerthError("invalid_input", `File path "${raw}" has an empty component; remove the extra "/".`);
    if (Buffer.byteLength(part, "utf8") > MAX_COMPONENT_BYTES) {
      throw new BerthError("invalid_input", `Each file path component may be at most ${MAX_COMPONENT_BYTES} bytes.`);
    }
  }
  return parts;
}

/**
 * Joins a relative path (validated with {@link parseRelativePath}) under `root` and asserts the result stays
 * inside. Pure string work: it does NOT look at the filesystem, so it cannot detect symlinks. Use it only for
 * paths the server builds itself (or before creating files in a workspace no container has touched yet);
 * reads from a live workspace must go through {@link openWorkspaceFile} / {@link listWorkspace}.
 * @returns the absolute path; `rel` = "" returns the resolved root.
 */
export function resolveInside(root: string, rel: string): string {
  const base = path.resolve(root);
  const full = path.join(base, ...parseRelativePath(rel));
  if (full !== base && !full.startsWith(base.endsWith(path.sep) ? base : base + path.sep)) {
    throw notFound(rel, "it leaves the workspace"); // unreachable after parseRelativePath; kept as a tripwire
  }
  return full;
}

/** `realpath(root)`: the prefix every verified `/proc/self/fd` link must start with. The root is ours, not the task's. */
async function realRoot(root: string): Promise<string> {
  try {
    return await realpath(root);
  } catch (err) {
    if (MISSING.has(errnoOf(err) ?? "")) throw new BerthError("not_found", "This task's workspace no longer exists.");
    throw err;
  }
}

/** True when the descriptor is exactly at `expected` according to the kernel. Fails closed without /proc. */
async function isAt(handle: FileHandle, expected: string): Promise<boolean> {
  let actual: Buffer;
  try {
    actual = await readlink(`/proc/self/fd/${handle.fd}`, { encoding: "buffer" });
  } catch (err) {
    throw new BerthError("internal_error", "Cannot verify a workspace path: /proc/self/fd is unavailable.", {}, { cause: err });
  }
  return actual.equals(Buffer.from(expected, "utf8"));
}

/**
 * Walk step (exported for tests): `lstat` each parent component and require a real directory, so a plain,
 * non-racing symlink anywhere in the path is refused before anything is opened. Not sufficient alone (the
 * tree can change right after); {@link _openVerified} closes that gap.
 * @internal
 */
export async function _walkParents(rootReal: string, parts: readonly string[], rel: string): Promise<void> {
  let dir = rootReal;
  for (const part of parts.slice(0, -1)) {
    dir = `${dir}/${part}`;
    const st = await lstat(dir).catch((err: unknown) => {
      if (MISSING.has(errnoOf(err) ?? "")) throw notFound(rel, "no such file");
      throw err;
    });
    if (!st.isDirectory()) throw notFound(rel, st.isSymbolicLink() ? "it passes through a symbolic link" : "no such directory");
  }
}

/**
 * Open step (exported for tests): opens the last component with O_NOFOLLOW, then verifies via
 * `/proc/self/fd` that the descriptor sits exactly at `rootReal/parts...`, which catches a parent swapped for
 * a symlink after {@link _walkParents}. Only after that check does it reveal the type (directory vs. other).
 * @internal
 */
export async function _openVerified(
  rootReal: string,
  parts: readonly string[],
  rel: string,
): Promise<{ handle: FileHandle; size: number }> {
  const target = `${rootReal}/${parts.join("/")}`;
  const missing = (err: unknown): never => {
    if (MISSING.has(errnoOf(err) ?? "")) throw notFound(rel, "no such file");
    throw err;
  };
  // Refuse links, FIFOs, sockets and devices before opening, so opening has no side effects (device opens can).
  const pre = await lstat(target).catch(missing);
  if (!pre.isFile() && !pre.isDirectory()) throw notFound(rel, "not a regular file");
  const handle = await open(target, FILE_FLAGS).catch(missing);
  try {
    const st = await handle.stat();
    if (!(await isAt(handle, target))) throw notFound(rel, "it passes through a symbolic link");
    if (st.isDirectory()) {
      throw new BerthError("invalid_input", `"${rel}" is a directory; list it with GET /v1/tasks/:id/files.`, { path: rel });
    }
    if (!st.isFile()) throw notFound(rel, "not a regular file"); // something swapped in after our lstat
    return { handle, size: st.size };
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/**
 * Opens a regular file in a (possibly live) workspace for reading, never following a symbolic link.
 *
 * @param root the workspace directory on the host (server-controlled; may itself be reached through links).
 * @param rel the client's relative path, as given to {@link parseRelativePath}.
 * @returns an open handle (caller closes it) and the file's size at open time.
 * @throws BerthError `not_found` for a missing path, traversal, any symlink in the path (planted or swapped in
 *   concurrently), FIFOs, sockets and devices; `invalid_input` for a directory (including `rel` = "") or a
 *   malformed path.
 */
export async function openWorkspaceFile(root: string, rel: string): Promise<{ handle: FileHandle; size: number }> {
  const parts = parseRelativePath(rel);
  if (parts.length === 0) {
    throw new BerthError("invalid_input", "The workspace root is a directory; list it with GET /v1/tasks/:id/files.");
  }
  const rootReal = await realRoot(root);
  await _walkParents(rootReal, parts, rel);
  return _openVerified(rootReal, parts, rel);
}

/** One listed workspace entry. */
export interface WorkspaceEntry {
  /** Relative to the workspace root, `/`-separated, no leading `./`. */
  path: string;
  type: "file" | "dir" | "symlink";
  /** Bytes for files; the link text's length for symlinks; 0 for directories. */
  size: number;
}

/** Limits for {@link listWorkspace}. */
export interface ListOptions {
  /** Most entries returned. @defaultValue 10000 */
  maxEntries?: number;
  /** Deepest level listed; the root's children are depth 1. @defaultValue 64 */
  maxDepth?: number;
}

/**
 * Lists a (possibly live) workspace recursively without following any symbolic link.
 *
 * Each directory is opened with O_NOFOLLOW|O_DIRECTORY, verified through `/proc/self/fd` to be exactly where
 * we expect, and then read and `lstat`ed through that descriptor (`/proc/self/fd/N/name`), so a directory
 * swapped for a link mid-walk is skipped rather than listing a host directory. Symlinks are reported (type
 * "symlink") but never descended; FIFOs, sockets and devices are skipped (the API has no type for them); names
 * that are not valid UTF-8 are skipped because no client path could name them exactly (a lossy decoding would
 * name a different file). Directories that are unreadable (EACCES) or vanish during the walk are skipped.
 * Breadth-first, so truncation keeps the shallow entries; the result is sorted by path.
 * @returns `truncated: true` when a limit was reached and entries may be missing.
 * @throws BerthError `not_found` when the workspace itself does not exist.
 */
export async function listWorkspace(root: string, opts: ListOptions = {}): Promise<{ files: WorkspaceEntry[]; truncated: boolean }> {
  const maxEntries = opts.maxEntries ?? 10_000;
  const maxDepth = opts.maxDepth ?? 64;
  // Skipped entries (FIFOs, bad names) do not count towards maxEntries, so bound the total work separately.
  let budget = maxEntries * 2 + 1_000;
  const rootReal = await realRoot(root);
  const files: WorkspaceEntry[] = [];
  let truncated = false; // some entries may be missing
  let full = false; // maxEntries or the work budget is exhausted: stop walking
  const queue: { rel: string; depth: number }[] = [{ rel: "", depth: 0 }];

  for (let next = queue.shift(); next && !full; next = queue.shift()) {
    const abs = next.rel === "" ? rootReal : `${rootReal}/${next.rel}`;
    let handle: FileHandle;
    try {
      handle = await open(abs, DIR_FLAGS);
    } catch (err) {
      const code = errnoOf(err) ?? "";
      if (!MISSING.has(code)) throw err;
      if (next.rel === "") throw new BerthError("not_found", "This task's workspace no longer exists.");
      if (code === "ENAMETOOLONG") truncated = true; // too deep to name; its entries are missing
      continue; // vanished, swapped for a link (ELOOP/ENOTDIR) or unreadable
    }
    try {
      if (!(await isAt(handle, abs))) continue; // a parent was swapped for a link after we queued it
      const via = `/proc/self/fd/${handle.fd}`;
      const dir = await opendir(via, { encoding: "buffer" as BufferEncoding }).catch((err: unknown) => {
        if (MISSING.has(errnoOf(err) ?? "")) return undefined;
        throw err;
      });
      if (!dir) continue;
      for await (const dirent of dir) {
        if (--budget < 0 || files.length >= maxEntries) {
          truncated = full = true;
          break; // leaving for-await closes the Dir
        }
        const raw = dirent.name as unknown as Buffer;
        const name = raw.toString("utf8");
        if (!Buffer.from(name, "utf8").equals(raw)) continue; // not valid UTF-8: skipped, see TSDoc
        const st = await lstat(`${via}/${name}`).catch(() => undefined); // vanished meanwhile: skip
        if (!st) continue;
        const rel = next.rel === "" ? name : `${next.rel}/${name}`;
        if (st.isSymbolicLink()) files.push({ path: rel, type: "symlink", size: st.size });
        else if (st.isFile()) files.push({ path: rel, type: "file", size: st.size });
        else if (st.isDirectory()) {
          files.push({ path: rel, type: "dir", size: 0 });
          if (next.depth + 1 < maxDepth) queue.push({ rel, depth: next.depth + 1 });
          else truncated = true; // its contents would be deeper than maxDepth
        }
        // FIFOs, sockets, block and character devices: skipped, never opened.
      }
    } finally {
      await handle.close();
    }
  }
  if (queue.length > 0) truncated = true;
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files, truncated };
}
