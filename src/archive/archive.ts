// Archives a finished task's workspace to tar.gz.
//
// Why GNU find + GNU tar + pigz and not node-tar's packer (see shared PITFALLS §3): node-tar's
// `c()` can hang forever on FIFOs/sockets, deadlocks on hardlinks across directories, aborts
// the whole pack on one non-UTF-8 name, one EACCES or one vanished file, and opens files by
// path without O_NOFOLLOW. GNU tar handles names as bytes, never dereferences (no `-h`), stores
// hardlinks as links, and reports unreadable files as per-file warnings. node-tar is only used
// to *read* the result back (verification), which is a streaming, non-following operation.
import { createHash, randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { access, lstat, mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { execa } from "execa";
import { errnoOf, TaskFailure } from "../errors.js";
import { verifyArchive } from "./read-archive.js";

const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3;
/** Cap on `skipped` so a workspace with a million FIFOs cannot blow up the task record. */
const MAX_REPORTED = 1000;
/** SIGTERM first; SIGKILL this long after a timeout/cancel if a child ignores it. */
const KILL_GRACE_MS = 1000;

/** Options for {@link createArchive}. */
export interface ArchiveOptions {
  /** Absolute path of the workspace directory. Its contents are untrusted (written by a container that is now gone). */
  workspacePath: string;
  /** Absolute final path of the archive; written via a temp file + rename, so it only ever holds a complete archive. */
  archivePath: string;
  /** Bound on the whole operation; on expiry children are killed, the temp file removed and `archive_failed` thrown. */
  timeoutMs: number;
  /** Regular files larger than this are left out and reported in `skipped`. Default 4 GiB. */
  maxFileBytes?: number;
  /** Aborting throws `TaskFailure("canceled")` (or the signal's reason if that is a TaskFailure). */
  signal?: AbortSignal;
}

/** A workspace path that is not in the archive, and why. */
export interface SkippedPath { path: string; why: string }

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
}


/**
 * Archives `workspacePath` into `archivePath` (tar.gz, GNU format, relative entry names).
 * Never follows symlinks, never aborts on odd names or unreadable files (they are reported),
 * verifies the result with node-tar before publishing it, and never leaves a partial file at
 * `archivePath`.
 * @throws TaskFailure `archive_failed` on timeout, write failure (ENOSPC...) or failed verification;
 *   `canceled` when `signal` aborts.
 */
export async function createArchive(opts: ArchiveOptions): Promise<ArchiveResult> {
  const { workspacePath, archivePath, timeoutMs } = opts;
  const maxFileBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!path.isAbsolute(workspacePath) || !path.isAbsolute(archivePath)) {
    throw new TaskFailure("archive_failed", "Archive paths must be absolute (internal error).");
  }
  if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes < 0) {
    throw new TaskFailure("archive_failed", `maxFileBytes must be a non-negative integer, got ${maxFileBytes}.`);
  }
  const deadline = abortAfter(timeoutMs, opts.signal);
  const dir = path.dirname(archivePath);
  // Same directory as the target so rename() is atomic; dot-prefixed so listings ignore it.
  const tmp = path.join(dir, `.${path.basename(archivePath)}.tmp-${randomBytes(8).toString("hex")}`);
  let fh: FileHandle | undefined;
  let renamed = false;
  try {
    deadline.signal.throwIfAborted();
    // lstat, not stat: a workspace path that is itself a symlink could point anywhere on the host.
    const st = await lstat(workspacePath);
    if (!st.isDirectory()) throw new TaskFailure("archive_failed", `Workspace ${workspacePath} is not a directory.`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // What is left out is listed while the archive is written (both only read the tree, which nothing changes now).
    const skippedP = findSkipped(workspacePath, maxFileBytes, deadline.signal);
    skippedP.catch(() => undefined); // awaited below; never an unhandled rejection if writing fails first
    // O_EXCL: never reuse or follow something already sitting at the temp name.
    fh = await open(tmp, "wx", 0o600);
    const written = await writeTarGz(workspacePath, maxFileBytes, fh, deadline.signal);
    const skipped = await skippedP;
    const known = new Set(skipped.map((s) => s.path));
    for (const s of written.unreadable) if (!known.has(s.path)) (known.add(s.path), report(skipped, s));
    await fh.sync();
    await fh.close();
    fh = undefined;
    const { entries, contentBytes } = await verifyArchive(tmp, deadline.signal);
    // Every name find listed is in the archive, except those tar reported as unreadable.
    if (entries > written.listed || entries < written.listed - written.unreadable.length) {
      throw new TaskFailure("archive_failed", `The archive has ${entries} entries for ${written.listed} listed paths.`);
    }
    deadline.signal.throwIfAborted();
    await rename(tmp, archivePath);
    renamed = true;
    await syncDir(dir);
    return { bytes: written.bytes, sha256: written.sha256, entries, skipped, contentBytes };
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    // Only reachable if the directory fsync failed: the caller will treat the archive as missing.
    if (renamed) await rm(archivePath, { force: true }).catch(() => undefined);
    throw toFailure(err, deadline.signal);
  } finally {
    deadline.dispose();
  }
}

/**
 * Sorts tar/find stderr lines into per-file warnings we tolerate (recorded as skipped) and
 * anything else (`unknown`, which fails the archive). Names are as the tool quoted them.
 * Exported for tests.
 */
export function classifyStderr(stderr: string): { skipped: SkippedPath[]; unknown: string[] } {
  const skipped: SkippedPath[] = [];
  const unknown: string[] = [];
  for (const line of stderr.split("\n")) {
    if (line === "" || line === "tar: Exiting with failure status due to previous errors") continue;
    // Greedy (.+) so a name containing ": " is kept whole; the tail is anchored to the end.
    const m =
      /^tar: (.+): ((?:Cannot open|Cannot stat|Cannot readlink|Cannot savedir): [^:]+)$/.exec(line) ??
      /^tar: (.+): (File removed before we read it|file changed as we read it)$/.exec(line) ??
      /^tar: (.+): (File shrank by \d+ bytes; padding with zeros|Read error at byte \d+, while reading \d+ bytes: [^:]+)$/.exec(
        line,
      ) ??
      /^find: ['‘](.+)['’]: (Permission denied|No such file or directory)$/.exec(line);
    // find names start with "./" (tar's come from find's %P list and do not).
    if (m?.[1] !== undefined && m[2] !== undefined) skipped.push({ path: m[1].replace(/^\.\//, ""), why: `unreadable: ${m[2]}` });
    else unknown.push(line);
  }
  return { skipped, unknown };
}

/** What the archive keeps: directories, symlinks (as links) and regular files up to the size cap. */
const keepExpr = (maxFileBytes: number): string[] =>
  ["(", "-type", "d", "-o", "-type", "l", "-o", "(", "-type", "f", "!", "-size", `+${maxFileBytes}c`, ")", ")"];

const SPECIAL_TYPES: Record<string, string> = { p: "named pipe (FIFO)", s: "socket", b: "block device", c: "character device" };

/** Lists what is left out: the exact complement of keepExpr, so every path is either archived or reported. */
async function findSkipped(cwd: string, maxFileBytes: number, signal: AbortSignal): Promise<SkippedPath[]> {
  const args = [".", "-mindepth", "1", "!", ...keepExpr(maxFileBytes), "-printf", "%y\\0%s\\0%P\\0"];
  const r = await execa("find", args, { ...childOptions(cwd, signal), stdin: "ignore", encoding: "buffer" });
  signal.throwIfAborted();
  const stderr = Buffer.from(r.stderr).toString("utf8");
  // Unreadable directories are reported once, by the main pass; other errors are fatal.
  if (r.failed && (r.exitCode !== 1 || classifyStderr(stderr).unknown.length > 0)) {
    throw new Error(`find failed: ${r.shortMessage} ${stderr.slice(0, 500)}`);
  }
  const fields = splitNul(Buffer.from(r.stdout));
  const skipped: SkippedPath[] = [];
  for (let i = 0; i + 2 < fields.length; i += 3) {
    const [type = "", size, name = ""] = fields.slice(i, i + 3);
    const special = SPECIAL_TYPES[type];
    const why = type === "f" ? `file larger than ${maxFileBytes} bytes (${size} bytes)` : `${special ?? `file type "${type}"`} not archived`;
    report(skipped, { path: name, why });
  }
  return skipped;
}

/** find | tar | pigz > fh, hashing the bytes on their way to disk. */
async function writeTarGz(
  cwd: string,
  maxFileBytes: number,
  fh: FileHandle,
  signal: AbortSignal,
): Promise<{ bytes: number; sha256: string; listed: number; unreadable: SkippedPath[] }> {
  // Resolve everything async *before* spawning: an await between spawning find and piping its
  // stdout lets execa start reading it, and the names read meanwhile are lost.
  const [gzCmd, gzArgs] = await compressor();
  const base = childOptions(cwd, signal);
  // %P prints the path without the leading "./", so entry names come out relative as-is.
  const findArgs = [".", "-mindepth", "1", ...keepExpr(maxFileBytes), "-printf", "%P\\0"];
  const find = execa("find", findArgs, { ...base, stdin: "ignore", buffer: { stdout: false } });
  // --verbatim-files-from: a file named "--to-command=..." must be a name, never an option.
  // --no-recursion: archive exactly find's list (find already filtered types and sizes).
  // No -h/--dereference: symlinks are stored as links, host files are never read through them.
  const tarArgs = ["--create", "--file=-", "--format=gnu", "--numeric-owner", "--no-recursion", "--null"];
  const tar = execa("tar", [...tarArgs, "--verbatim-files-from", "--files-from=-"], { ...base, buffer: { stdout: false } });
  const gz = execa(gzCmd, gzArgs, { ...base, buffer: { stdout: false } });
  const hash = createHash("sha256");
  let bytes = 0;
  // A plain Writable over the FileHandle: fs.WriteStream with autoClose:false never emits
  // 'close', which makes stream.pipeline wait forever. writeFile() loops over short writes.
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      fh.writeFile(chunk).then(() => cb(), cb);
    },
  });
  // Count the names tar is asked for, to cross-check the archive's entry count afterwards.
  let listed = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      for (let i = chunk.indexOf(0); i !== -1; i = chunk.indexOf(0, i + 1)) listed++;
      cb(null, chunk);
    },
  });
  const [toTar, toGz, toFile, rFind, rTar, rGz] = await Promise.allSettled([
    pipeline(find.stdout, counter, tar.stdin, { signal }),
    pipeline(tar.stdout, gz.stdin, { signal }),
    pipeline(gz.stdout, sink, { signal }),
    find,
    tar,
    gz,
  ]);
  signal.throwIfAborted();
  // Root cause first: a failed write (ENOSPC) makes pigz and tar die of EPIPE afterwards.
  if (toFile.status === "rejected") throw toFile.reason;
  // tar: 1 = "file changed as we read it"; 2 is tolerated only if every line is a per-file read
  // warning. find: 1 only for unreadable/vanished directories. Anything else fails the archive.
  const unreadable = [
    ...childWarnings("tar", rTar, (code, unknown) => code === 1 || (code === 2 && unknown === 0)),
    ...childWarnings("find", rFind, (code, unknown) => code === 1 && unknown === 0),
    ...childWarnings(gzCmd, rGz, () => false),
  ];
  for (const p of [toTar, toGz]) if (p.status === "rejected") throw p.reason;
  return { bytes, sha256: hash.digest("hex"), listed, unreadable };
}

type ChildResult = PromiseSettledResult<{ failed: boolean; exitCode?: number; stderr: string; shortMessage?: string }>;

function childWarnings(name: string, r: ChildResult, tolerate: (code: number, unknown: number) => boolean): SkippedPath[] {
  if (r.status === "rejected") throw r.reason;
  const { skipped, unknown } = classifyStderr(r.value.stderr);
  const { failed, exitCode } = r.value;
  if (failed && (exitCode === undefined || !tolerate(exitCode, unknown.length))) {
    throw new Error(`${name} failed: ${r.value.shortMessage ?? ""} ${unknown.join(" | ").slice(0, 500)}`);
  }
  return skipped;
}

let compressorChoice: Promise<[string, string[]]> | undefined;
/** pigz -p2 when on PATH (parallel, bounded to 2 cores), else gzip. */
function compressor(): Promise<[string, string[]]> {
  const onPath = (dir: string) => access(path.join(dir, "pigz"), fsConstants.X_OK).then(() => true, () => false);
  compressorChoice ??= Promise.all((process.env.PATH ?? "").split(path.delimiter).filter(Boolean).map(onPath)).then(
    (found) => (found.includes(true) ? ["pigz", ["-p", "2", "-c"]] : ["gzip", ["-c"]]),
  );
  return compressorChoice;
}

function childOptions(cwd: string, signal: AbortSignal) {
  // LC_ALL=C: stderr must be in English for classifyStderr, and names quoted byte-wise.
  return { cwd, cancelSignal: signal, forceKillAfterDelay: KILL_GRACE_MS, reject: false, env: { LC_ALL: "C" } } as const;
}

function splitNul(buf: Buffer): string[] {
  const out: string[] = [];
  let start = 0;
  for (let i = buf.indexOf(0); i !== -1; start = i + 1, i = buf.indexOf(0, start)) {
    out.push(buf.toString("utf8", start, i)); // lossy for non-UTF-8 names; only used for reporting
  }
  return out;
}

function report(list: SkippedPath[], item: SkippedPath): void {
  if (list.length < MAX_REPORTED) list.push(item);
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, "r");
  await d.sync().finally(() => d.close());
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
  return { signal: ac.signal, dispose: () => (clearTimeout(timer), outer?.removeEventListener("abort", onOuter)) };
}

function toFailure(err: unknown, signal: AbortSignal): TaskFailure {
  if (signal.aborted && signal.reason instanceof TaskFailure) return signal.reason;
  if (err instanceof TaskFailure) return err;
  const hint = errnoOf(err) === "ENOSPC" ? " The disk holding the archives is full." : "";
  const msg = err instanceof Error ? err.message : String(err);
  return new TaskFailure("archive_failed", `Could not archive the workspace: ${msg}.${hint}`, { cause: err });
}
