// The GNU packer, for large or unusual workspaces: find | sort | (Node: keep-list, skipped report) | GNU tar | gzip
// or pigz. GNU tar handles names as bytes, never dereferences (no `-h`), stores hardlinks as links, and reports
// unreadable files as per-file warnings (gnu-stderr.ts); find's listing is sorted by name (byte order, so the
// archive's entries come in the order manifests keep: domain/manifest.ts) and filtered (find-listing.ts), so
// FIFOs, sockets, devices and oversized files never reach tar.
import { tmpdir } from "node:os";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import { execa } from "execa";
import { FIND_FORMAT, FindSplitter } from "./find-listing.js";
import { classifyStderr } from "./gnu-stderr.js";
import type { ListingObserver, PackedArchive, SkippedPath } from "./packing.js";
import { type ArchiveSink, type Written, writeArchiveStream } from "./sink.js";

/** SIGTERM first; SIGKILL this long after a timeout/cancel if a child ignores it. */
const KILL_GRACE_MS = 1000;
/** Tar output up to this size is gzipped in-process; above it, pigz (parallel) does it. */
const IN_PROCESS_GZIP_BYTES = 1024 * 1024;
/** Memory `sort` may use before it spills to temporary files. */
const SORT_BUFFER = "32M";

const gzipAsync = promisify(gzip);

/**
 * find | sort | (Node: keep-list, skipped report) | tar | gzip into `sink`, hashing the bytes on their way. Small
 * archives are compressed with node:zlib, larger ones by pigz; which one is decided by tar's actual output.
 */
export async function packGnu(
  cwd: string,
  maxFileBytes: number,
  sink: ArchiveSink,
  signal: AbortSignal,
  observer?: ListingObserver,
): Promise<PackedArchive> {
  // Resolve everything async *before* spawning: an await between spawning find and piping its
  // stdout lets execa start reading it, and the names read meanwhile are lost.
  const [gzCmd, gzArgs] = await compressor();
  const base = childOptions(cwd, signal);
  // One pass over the tree: type, size, link count and name (%P: without the leading "./") of every path.
  const find = execa("find", [".", "-mindepth", "1", "-printf", FIND_FORMAT], { ...base, stdin: "ignore", buffer: { stdout: false } });
  // By name from the fourth field to the end of the record (names may hold spaces), byte by byte (LC_ALL=C).
  const sortArgs = ["-z", "-t", " ", "-k4", `--buffer-size=${SORT_BUFFER}`, `--temporary-directory=${tmpdir()}`];
  const sort = execa("sort", sortArgs, { ...base, buffer: { stdout: false } });
  // --verbatim-files-from: a file named "--to-command=..." must be a name, never an option.
  // --no-recursion: archive exactly the kept list (types and sizes are already filtered).
  // No -h/--dereference: symlinks are stored as links, host files are never read through them.
  const tarArgs = ["--create", "--file=-", "--format=gnu", "--numeric-owner", "--no-recursion", "--null"];
  const tar = execa("tar", [...tarArgs, "--verbatim-files-from", "--files-from=-"], { ...base, buffer: { stdout: false } });
  const splitter = new FindSplitter(maxFileBytes, observer);
  const compressed = compress(tar.stdout, sink, signal, () => startCompressor(gzCmd, gzArgs, base));
  const [toSort, toTar, toFile, rFind, rSort, rTar] = await Promise.allSettled([
    pipeline(find.stdout, sort.stdin, { signal }),
    pipeline(sort.stdout, splitter, tar.stdin, { signal }),
    compressed,
    find,
    sort,
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
  childWarnings("sort", rSort, () => false);
  if (toSort.status === "rejected") throw toSort.reason;
  if (toTar.status === "rejected") throw toTar.reason;
  return { ...toFile.value, listed: splitter.listed, skipped: splitter.skipped, unreadable };
}

/**
 * Gzips `tarOut` into `sink`. Reads up to IN_PROCESS_GZIP_BYTES first: if tar ends within that, the bytes are
 * compressed with node:zlib (no process to start); otherwise `spawnGz` starts the compressor, which gets what
 * was read so far and then the rest of the stream.
 */
async function compress(tarOut: Readable, sink: ArchiveSink, signal: AbortSignal, spawnGz: () => Compressor): Promise<Written> {
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
  if (next.done) return writeArchiveStream(Readable.from([await gzipAsync(Buffer.concat(head, size))]), sink, signal);
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
    writeArchiveStream(gz.stdout, sink, signal),
    gz,
  ]);
  if (toFile.status === "rejected") throw toFile.reason;
  childWarnings("compressor", rGz, () => false);
  if (toGz.status === "rejected") throw toGz.reason;
  return toFile.value;
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
