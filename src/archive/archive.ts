// Archives a finished task's workspace to tar.gz.
//
// Large or unusual workspaces go through GNU find + GNU tar (+ pigz for big ones), not node-tar's
// packer (see shared PITFALLS §3): node-tar's `c()` can hang forever on FIFOs/sockets, deadlocks
// on hardlinks across directories, aborts the whole pack on one non-UTF-8 name, one EACCES or one
// vanished file, and opens files by path without O_NOFOLLOW. GNU tar handles names as bytes, never
// dereferences (no `-h`), stores hardlinks as links, and reports unreadable files as per-file
// warnings.
//
// Small, plain workspaces (the common case) are packed in-process, with no process to start: they
// are listed first, and node-tar's synchronous packer only gets an explicit list of directories,
// symlinks and single-link regular files with valid UTF-8 names, together with the lstat results
// of that listing, so none of the cases above can reach it; anything else, or any error, sends the
// workspace down the GNU path. Both paths verify the result by reading it back with node-tar.
import { createHash, randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { lstat, mkdir, open, opendir, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { execa } from "execa";
import { PackSync } from "tar";
import { errnoOf, TaskFailure } from "../errors.js";
import { verifyArchive } from "./read-archive.js";

const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3;
/** Cap on `skipped` so a workspace with a million FIFOs cannot blow up the task record. */
const MAX_REPORTED = 1000;
/** SIGTERM first; SIGKILL this long after a timeout/cancel if a child ignores it. */
const KILL_GRACE_MS = 1000;

/** Options for {@link createArchive}. */
export interface ArchiveOptions {
  /**
   * Absolute path of the workspace directory. Its contents are untrusted (written by a container that has
   * exited), and nothing may change them while the archive is made.
   */
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
export interface SkippedPath {
  path: string;
  why: string;
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
}

/**
 * Archives `workspacePath` into `archivePath` (tar.gz with relative entry names: node-tar's ustar/pax format for
 * small workspaces, GNU format for the others).
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
    // O_EXCL: never reuse or follow something already sitting at the temp name.
    fh = await open(tmp, "wx", 0o600);
    // A small, plain workspace is packed in-process; any other, or one node-tar refuses, by GNU find and tar.
    const small = await listSmall(workspacePath, maxFileBytes, deadline.signal);
    const written =
      (small ? await writeSmall(workspacePath, small, fh) : null) ?? (await writeTarGz(workspacePath, maxFileBytes, fh, deadline.signal));
    const skipped = written.skipped;
    const known = new Set(skipped.map((s) => s.path));
    for (const s of written.unreadable) {
      if (known.has(s.path)) continue;
      known.add(s.path);
      report(skipped, s);
    }
    await fh.sync();
    await fh.close();
    fh = undefined;
    const { entries, contentBytes } = await verifyArchive(tmp, deadline.signal);
    // Every listed name is in the archive, except those tar reported as unreadable.
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
      /^tar: (.+): (File shrank by \d+ bytes; padding with zeros|Read error at byte \d+, while reading \d+ bytes: [^:]+)$/.exec(line) ??
      /^find: ['‘](.+)['’]: (Permission denied|No such file or directory)$/.exec(line);
    // find names start with "./" (tar's come from find's %P list and do not).
    if (m?.[1] !== undefined && m[2] !== undefined) skipped.push({ path: m[1].replace(/^\.\//, ""), why: `unreadable: ${m[2]}` });
    else unknown.push(line);
  }
  return { skipped, unknown };
}

const SPECIAL_TYPES: Record<string, string> = { p: "named pipe (FIFO)", s: "socket", b: "block device", c: "character device" };
const tooLarge = (maxFileBytes: number, size: number) => `file larger than ${maxFileBytes} bytes (${size} bytes)`;

/** Bounds of the in-process path; a workspace beyond any of them is archived by GNU find and tar. Exported for tests. */
export const IN_PROCESS_LIMITS = { entries: 256, bytes: 1024 * 1024, pathBytes: 1024 } as const;

/** A small, plain workspace: what to archive (relative names, walk order) with their lstat results, and what not. */
interface SmallListing {
  names: string[];
  /** lstat of every name, keyed by absolute path (node-tar's statCache), so node-tar archives exactly what was listed. */
  stats: Map<string, Stats>;
  skipped: SkippedPath[];
}

/**
 * Lists the workspace if it is small and plain (IN_PROCESS_LIMITS): few paths, each name valid UTF-8 and not one
 * node-tar would rewrite, short paths, regular files with one link and few bytes in all.
 * FIFOs, sockets, devices and files over `maxFileBytes` are left out and reported, as on the GNU path. Returns
 * null for anything else (including unreadable directories), which then takes the GNU path.
 */
async function listSmall(root: string, maxFileBytes: number, signal: AbortSignal): Promise<SmallListing | null> {
  const listing: SmallListing = { names: [], stats: new Map(), skipped: [] };
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
      }
    }
    return true;
  };
  try {
    return (await visit("")) ? listing : null;
  } catch (err) {
    if (signal.aborted) throw err;
    return null; // unreadable or unexpected: GNU tar reports per file what it cannot read
  }
}

/**
 * Packs a small listing with node-tar's synchronous packer (bounded by the listing's limits), gzips it with
 * node:zlib and writes it to `fh`. Returns null if node-tar refuses anything (strict mode), before writing.
 */
async function writeSmall(root: string, listing: SmallListing, fh: FileHandle): Promise<WrittenArchive | null> {
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
  const gz = await gzipAsync(tarBytes);
  await fh.writeFile(gz);
  const sha256 = createHash("sha256").update(gz).digest("hex");
  return { bytes: gz.length, sha256, listed: listing.names.length, skipped: listing.skipped, unreadable: [] };
}

interface WrittenArchive {
  bytes: number;
  sha256: string;
  /** Names tar was asked to archive. */
  listed: number;
  skipped: SkippedPath[];
  /** Listed names tar reported it could not read. */
  unreadable: SkippedPath[];
}

/**
 * Splits find's `%y\0%s\0%P\0` records (type, size, name) into what tar archives and what is left out. Kept:
 * directories, symlinks (stored as links) and regular files up to `maxFileBytes`; their names go out as raw bytes,
 * NUL-terminated, for `tar --null --files-from=-`. Everything else is reported in `skipped`, so every path is
 * either archived or reported.
 */
class FindSplitter extends Transform {
  /** Names passed on to tar. */
  listed = 0;
  readonly skipped: SkippedPath[] = [];
  /** The start of a record that continues in the next chunk. */
  private rest: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFileBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, out?: Buffer) => void): void {
    const buf = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const endType = buf.indexOf(0, start);
      const endSize = endType === -1 ? -1 : buf.indexOf(0, endType + 1);
      const endName = endSize === -1 ? -1 : buf.indexOf(0, endSize + 1);
      if (endName === -1) break;
      const name = buf.subarray(endSize + 1, endName);
      if (this.keep(buf.toString("latin1", start, endType), Number(buf.toString("latin1", endType + 1, endSize)), name)) {
        out.push(name, NUL);
      }
      start = endName + 1;
    }
    this.rest = Buffer.from(buf.subarray(start));
    cb(null, out.length > 0 ? Buffer.concat(out) : undefined);
  }

  override _flush(cb: (err?: Error | null) => void): void {
    cb(this.rest.length > 0 ? new Error("find's output ended inside a record") : null);
  }

  private keep(type: string, size: number, name: Buffer): boolean {
    if (type === "d" || type === "l" || (type === "f" && size <= this.maxFileBytes)) {
      this.listed++;
      return true;
    }
    const special = SPECIAL_TYPES[type];
    const why = type === "f" ? tooLarge(this.maxFileBytes, size) : `${special ?? `file type "${type}"`} not archived`;
    // Lossy for non-UTF-8 names; only used for reporting.
    report(this.skipped, { path: name.toString("utf8"), why });
    return false;
  }
}

const NUL = Buffer.alloc(1);
const gzipAsync = promisify(gzip);

/** Tar output up to this size is gzipped in-process; above it, pigz (parallel) does it. */
const IN_PROCESS_GZIP_BYTES = 1024 * 1024;

/**
 * find | (Node: keep-list, skipped report) | tar | gzip > fh, hashing the bytes on their way to disk. Small
 * archives are compressed with node:zlib, larger ones by pigz; which one is decided by tar's actual output.
 */
async function writeTarGz(cwd: string, maxFileBytes: number, fh: FileHandle, signal: AbortSignal): Promise<WrittenArchive> {
  // Resolve everything async *before* spawning: an await between spawning find and piping its
  // stdout lets execa start reading it, and the names read meanwhile are lost.
  const [gzCmd, gzArgs] = await compressor();
  const base = childOptions(cwd, signal);
  // One pass over the tree: type, size and name (%P: without the leading "./") of every path.
  const findArgs = [".", "-mindepth", "1", "-printf", "%y\\0%s\\0%P\\0"];
  const find = execa("find", findArgs, { ...base, stdin: "ignore", buffer: { stdout: false } });
  // --verbatim-files-from: a file named "--to-command=..." must be a name, never an option.
  // --no-recursion: archive exactly the kept list (types and sizes are already filtered).
  // No -h/--dereference: symlinks are stored as links, host files are never read through them.
  const tarArgs = ["--create", "--file=-", "--format=gnu", "--numeric-owner", "--no-recursion", "--null"];
  const tar = execa("tar", [...tarArgs, "--verbatim-files-from", "--files-from=-"], { ...base, buffer: { stdout: false } });
  const splitter = new FindSplitter(maxFileBytes);
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
  const compressed = compress(tar.stdout, sink, signal, () => startCompressor(gzCmd, gzArgs, base));
  const [toTar, toFile, rFind, rTar] = await Promise.allSettled([
    pipeline(find.stdout, splitter, tar.stdin, { signal }),
    compressed,
    find,
    tar,
  ]);
  signal.throwIfAborted();
  // Root cause first: a failed write (ENOSPC) makes pigz and tar die of EPIPE afterwards.
  if (toFile.status === "rejected") throw toFile.reason;
  // tar: 1 = "file changed as we read it"; 2 is tolerated only if every line is a per-file read
  // warning. find: 1 only for unreadable/vanished directories. Anything else fails the archive.
  const unreadable = [
    ...childWarnings("tar", rTar, (code, unknown) => code === 1 || (code === 2 && unknown === 0)),
    ...childWarnings("find", rFind, (code, unknown) => code === 1 && unknown === 0),
  ];
  if (toTar.status === "rejected") throw toTar.reason;
  return { bytes, sha256: hash.digest("hex"), listed: splitter.listed, skipped: splitter.skipped, unreadable };
}

/**
 * Gzips `tarOut` into `sink`. Reads up to IN_PROCESS_GZIP_BYTES first: if tar ends within that, the bytes are
 * compressed with node:zlib (no process to start); otherwise `spawnGz` starts the compressor, which gets what
 * was read so far and then the rest of the stream.
 */
async function compress(tarOut: Readable, sink: Writable, signal: AbortSignal, spawnGz: () => Compressor): Promise<void> {
  const source = tarOut[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  let next = await source.next();
  for (; !next.done; next = await source.next()) {
    head.push(next.value);
    size += next.value.length;
    if (size > IN_PROCESS_GZIP_BYTES) break;
  }
  signal.throwIfAborted();
  if (next.done) {
    await pipeline(Readable.from([await gzipAsync(Buffer.concat(head, size))]), sink, { signal });
    return;
  }
  const rest = async function* (): AsyncGenerator<Buffer> {
    try {
      yield* head;
      for (let r = await source.next(); !r.done; r = await source.next()) yield r.value;
    } finally {
      await source.return?.();
    }
  };
  const gz = spawnGz();
  const [toGz, toFile, rGz] = await Promise.allSettled([
    pipeline(Readable.from(rest()), gz.stdin, { signal }),
    pipeline(gz.stdout, sink, { signal }),
    gz,
  ]);
  if (toFile.status === "rejected") throw toFile.reason;
  childWarnings("compressor", rGz, () => false);
  if (toGz.status === "rejected") throw toGz.reason;
}

const startCompressor = (cmd: string, args: string[], base: ReturnType<typeof childOptions>) =>
  execa(cmd, args, { ...base, buffer: { stdout: false } });
type Compressor = ReturnType<typeof startCompressor>;

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
/** pigz -p2 when it runs here (parallel, bounded to 2 cores), else gzip. Asked once per process. */
function compressor(): Promise<[string, string[]]> {
  compressorChoice ??= execa("pigz", ["--version"], { reject: false, timeout: 5000 }).then(
    (r) => (r.exitCode === 0 ? ["pigz", ["-p", "2", "-c"]] : ["gzip", ["-c"]]),
    () => ["gzip", ["-c"]],
  );
  return compressorChoice;
}

function childOptions(cwd: string, signal: AbortSignal) {
  // LC_ALL=C: stderr must be in English for classifyStderr, and names quoted byte-wise.
  return { cwd, cancelSignal: signal, forceKillAfterDelay: KILL_GRACE_MS, reject: false, env: { LC_ALL: "C" } } as const;
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
  return new TaskFailure("archive_failed", `Could not archive the workspace: ${msg}.${hint}`, { cause: err });
}
