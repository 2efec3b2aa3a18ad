// A finished task's files read out of its archive, streamed from the store (no temp file, nothing cached): the
// listing and single files, with the answers the files API gives for a live workspace (workspace/safe-path.ts).
//
// An archive is untrusted data; what is served from it follows the live rules: a path that is, or passes through, a
// symbolic link is refused, whatever it points to. berth's archives list every directory before what it holds
// (find's order), so an entry is served only if each of its parents appeared earlier as a directory: a path under
// a symbolic link, or under anything else, is never served. Names that are not valid UTF-8 (decoded as U+FFFD) are
// left out, as a live listing leaves them out.
import { Readable } from "node:stream";
import { Parser, type ReadEntry } from "tar";
import { BerthError, errnoOf } from "../errors.js";
import { notFound, type WorkspaceEntry } from "../workspace/safe-path.js";
import { isEmptyTarGz } from "./read-archive.js";

/** Opens the archive's bytes from the store, or null when it is not there. */
export type OpenArchive = () => Promise<Readable | null>;

const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);
/** An empty archive is a few compressed end-of-archive blocks; anything longer is not one. */
const EMPTY_MAX_BYTES = 64 * 1024;

/**
 * An entry's path without its trailing "/", or null when it is not a plain relative name (or not valid UTF-8,
 * unless `lossy`: then with U+FFFD for what is not).
 */
function cleanPath(e: ReadEntry, lossy = false): string | null {
  const p = e.path.replace(/\/+$/, "");
  const parts = p.split("/");
  if (p === "" || p.startsWith("/") || (!lossy && p.includes("\uFFFD")) || parts.some((x) => x === "" || x === "." || x === ".."))
    return null;
  return p;
}

const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");

/** What a visitor does with an entry: skip it (its bytes are discarded), keep it (the visitor reads its bytes), stop. */
export type Step = "skip" | "keep" | "stop";

/**
 * Walks the archive from `open`, calling `visit` with each entry whose parents are all directories seen before it
 * (see the top of this file); with `lossyNames`, names that are not UTF-8 too (with U+FFFD, as manifests have them).
 * Throws not_found (404) without an archive.
 */
export async function walk(
  open: OpenArchive,
  signal: AbortSignal,
  visit: (e: ReadEntry, path: string) => Step,
  opts: { lossyNames?: boolean } = {},
): Promise<void> {
  const source = await open();
  if (!source) throw new BerthError("not_found", "This task's archive is no longer in the archive store.");
  const dirs = new Set<string>([""]);
  // The first bytes, to tell an empty archive (only end-of-archive blocks, which node-tar calls unrecognized).
  let head: Buffer[] | null = [];
  let headBytes = 0;
  let entries = 0;
  source.on("data", (chunk: Buffer) => {
    if (!head) return;
    headBytes += chunk.length;
    if (headBytes > EMPTY_MAX_BYTES) head = null;
    else head.push(chunk);
  });
  await new Promise<void>((resolve, reject) => {
    let done = false;
    const finish = (err?: unknown) => {
      if (done) return;
      done = true;
      signal.removeEventListener("abort", onAbort);
      source.unpipe(parser);
      source.destroy();
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = () => finish(signal.reason);
    const parser = new Parser({
      strict: true,
      maxDecompressionRatio: Infinity,
      onReadEntry: (e: ReadEntry) => {
        entries++;
        const p = done ? null : cleanPath(e, opts.lossyNames);
        let step: Step = "skip";
        if (p !== null && dirs.has(parentOf(p))) {
          if (e.type === "Directory") dirs.add(p);
          try {
            step = visit(e, p);
          } catch (err) {
            finish(err);
          }
        }
        if (step === "stop") finish();
        else if (step === "skip") e.resume();
      },
    });
    // Kept for the parser's whole life: an 'error' with no listener would throw.
    parser.on("error", (err: unknown) => finish(err));
    parser.on("end", () => finish());
    source.on("error", (err) => finish(err));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    source.pipe(parser);
  }).catch(async (err: unknown) => {
    if (entries > 0 || errnoOf(err) !== "TAR_BAD_ARCHIVE" || !head || !(await isEmptyTarGz(Buffer.concat(head)))) throw err;
  });
}

/**
 * The listing of a finished task's workspace from its archive: files, directories and symbolic links (never
 * followed), sorted by path; `truncated` when a limit left entries out (the shallowest are kept).
 */
export async function listArchiveFiles(
  open: OpenArchive,
  signal: AbortSignal,
  opts: { maxEntries?: number; maxDepth?: number } = {},
): Promise<{ files: WorkspaceEntry[]; truncated: boolean }> {
  const maxEntries = opts.maxEntries ?? 10_000;
  const maxDepth = opts.maxDepth ?? 64;
  // Bounds the work and the memory whatever the archive holds, as a live listing's budget does.
  let budget = maxEntries * 2 + 1_000;
  const files: (WorkspaceEntry & { depth: number })[] = [];
  const sizes = new Map<string, number>();
  let truncated = false;
  const keepShallowest = () => {
    files.sort((a, b) => a.depth - b.depth || (a.path < b.path ? -1 : 1));
    files.length = maxEntries;
    truncated = true;
  };
  await walk(open, signal, (e, p) => {
    if (--budget < 0) {
      truncated = true;
      return "stop";
    }
    const depth = p.split("/").length;
    if (depth > maxDepth) {
      truncated = true;
      return "skip";
    }
    if (FILE_TYPES.has(e.type)) {
      files.push({ path: p, type: "file", size: e.size ?? 0, depth });
      // A hardlink later in the archive lists with its target's size, as lstat would give it.
      if (sizes.size < maxEntries) sizes.set(p, e.size ?? 0);
    } else if (e.type === "Link") {
      const size = sizes.get((e.linkpath ?? "").replace(/\/+$/, ""));
      if (size !== undefined) files.push({ path: p, type: "file", size, depth });
    } else if (e.type === "Directory") {
      files.push({ path: p, type: "dir", size: 0, depth });
      if (depth >= maxDepth) truncated = true; // its contents would be deeper than maxDepth
    } else if (e.type === "SymbolicLink") {
      files.push({ path: p, type: "symlink", size: Buffer.byteLength(e.linkpath ?? ""), depth });
    }
    if (files.length > maxEntries * 2) keepShallowest();
    return "skip";
  });
  if (files.length > maxEntries) keepShallowest();
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { files: files.map(({ path, type, size }) => ({ path, type, size })), truncated };
}

/**
 * One regular file of a finished task's workspace, streamed out of its archive. `parts` is the validated relative
 * path (workspace/safe-path.ts parseRelativePath). Resolves once the file's entry is found, with its size and its
 * bytes; the rest of the archive is not read.
 * @throws BerthError not_found for a missing path, a symbolic link or a path through one, or anything but a regular
 *   file or directory; invalid_input for a directory.
 */
export async function openArchiveFile(
  open: OpenArchive,
  parts: readonly string[],
  signal: AbortSignal,
): Promise<{ size: number; stream: Readable }> {
  const rel = parts.join("/");
  const found = await findFile(open, rel, signal);
  if ("stream" in found) return found;
  // A hardlink: its content is its target's, earlier in the archive.
  const target = await findFile(open, found.linkTo, signal).catch(() => null);
  if (!target || !("stream" in target)) throw notFound(rel, "not a regular file");
  return target;
}

type Found = { size: number; stream: Readable } | { linkTo: string };

/** The entry named `rel`: a regular file's size and bytes, or a hardlink's target. */
async function findFile(open: OpenArchive, rel: string, signal: AbortSignal): Promise<Found> {
  return new Promise<Found>((resolve, reject) => {
    let found: Found | undefined;
    let problem: BerthError | undefined;
    walk(open, signal, (e, p) => {
      // The file's bytes have all passed (the parser moved on): nothing more to read.
      if (found) return "stop";
      if (p !== rel) return "skip";
      if (FILE_TYPES.has(e.type)) {
        found = { size: e.size ?? 0, stream: Readable.from(e as unknown as AsyncIterable<Buffer>) };
        resolve(found);
        return "keep";
      }
      if (e.type === "Link") found = { linkTo: (e.linkpath ?? "").replace(/\/+$/, "") };
      else if (e.type === "Directory") {
        problem = new BerthError("invalid_input", `"${rel}" is a directory; list it with GET /v1/tasks/:id/files.`, { path: rel });
      } else problem = notFound(rel, e.type === "SymbolicLink" ? "it is a symbolic link" : "not a regular file");
      return "stop";
    }).then(
      () => {
        if (problem) reject(problem);
        else if (found) resolve(found);
        else reject(notFound(rel, "no such file"));
      },
      (err: unknown) => {
        // A broken archive part-way through the file: the bytes stop with an error, so the response is cut short.
        if (found && "stream" in found) found.stream.destroy(err instanceof Error ? err : new Error(String(err)));
        reject(err);
      },
    );
  });
}
