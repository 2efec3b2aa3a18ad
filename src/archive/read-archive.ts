// Reading tar.gz archives back with node-tar: listing (tests, tooling) and the walk that fromTask extraction scans
// with. (A new archive is verified as it is written: verify-stream.ts.)
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createGunzip, gunzip } from "node:zlib";
import { Parser, type ReadEntry } from "tar";
import { errnoOf } from "../errors.js";

/** One entry as listed by {@link listArchive}; `type` is node-tar's name (File, Directory, SymbolicLink, Link...). */
export interface ArchiveEntry {
  path: string;
  type: string;
  size: number;
  linkpath?: string;
}

/** Lists every entry of a tar(.gz) file with node-tar (streaming, strict). Used by tests and tooling. */
export async function listArchive(archivePath: string): Promise<ArchiveEntry[]> {
  const out: ArchiveEntry[] = [];
  await walkArchive(archivePath, (e) => {
    const entry: ArchiveEntry = { path: e.path, type: e.type, size: e.size ?? 0 };
    if (e.linkpath) entry.linkpath = e.linkpath;
    out.push(entry);
  });
  return out;
}

const gunzipAsync = promisify(gunzip);

/**
 * Archives up to this size are read in one call and parsed from memory instead of streamed. The size of one
 * streamed read, so parsing never works on more at once (gunzipped, that is up to ~64 MiB) than when streaming.
 */
const READ_WHOLE_BYTES = 64 * 1024;

/**
 * Streams a tar or tar.gz file through node-tar's parser in strict mode (corrupt or truncated
 * input rejects) and calls `visit` for every entry. `visit` may throw to stop; that error rejects.
 */
export async function walkArchive(file: string, visit: (entry: ReadEntry) => void, signal?: AbortSignal): Promise<void> {
  const source = (await readIfSmall(file, signal)) ?? file;
  let seen = 0;
  try {
    await parseArchive(
      source,
      (e) => {
        seen++;
        return visit(e);
      },
      signal,
    );
  } catch (err) {
    // node-tar calls an archive of only end-of-archive blocks (GNU tar's output for an empty
    // workspace) "Unrecognized archive format"; accept exactly that case and nothing else.
    if (seen > 0 || errnoOf(err) !== "TAR_BAD_ARCHIVE" || !(await isEmptyTarGz(source, signal))) throw err;
  }
}

/** The whole file if it is at most READ_WHOLE_BYTES long, else null. */
async function readIfSmall(file: string, signal?: AbortSignal): Promise<Buffer | null> {
  const fh = await open(file, "r");
  try {
    return (await fh.stat()).size <= READ_WHOLE_BYTES ? await fh.readFile({ signal }) : null;
  } finally {
    await fh.close();
  }
}

/** True if `source` (a file, or bytes already read) gunzips to a non-empty whole number of all-zero 512-byte blocks. */
export async function isEmptyTarGz(source: string | Buffer, signal?: AbortSignal): Promise<boolean> {
  if (typeof source !== "string") {
    // Bytes already read: gunzipped in one call, capped (an empty tar is a few end-of-archive blocks).
    const tar = await gunzipAsync(source, { maxOutputLength: 1024 * 1024 }).catch(() => null);
    return tar !== null && tar.length > 0 && tar.length % 512 === 0 && tar.every((b) => b === 0);
  }
  let size = 0;
  const check = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      size += chunk.length;
      cb(chunk.every((b) => b === 0) ? null : new Error("data"));
    },
  });
  const ok = await pipeline(createReadStream(source), createGunzip(), check, { signal }).then(
    () => true,
    () => false,
  );
  return ok && size > 0 && size % 512 === 0;
}

/** Parses a tar(.gz) file, or its bytes already read, calling `visit` for every entry. */
function parseArchive(source: string | Buffer, visit: (entry: ReadEntry) => void, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let done = false;
    const input = typeof source === "string" ? createReadStream(source) : undefined;
    const finish = (err?: unknown): void => {
      if (done) return;
      done = true;
      signal?.removeEventListener("abort", onAbort);
      if (err === undefined) {
        resolve();
        return;
      }
      input?.destroy();
      reject(err);
    };
    const onAbort = (): void => finish(signal?.reason);
    const parser = new Parser({
      strict: true,
      // Deflate cannot exceed ~1032:1, so node-tar's default ratio cap (1000) only rejects
      // legitimate zero-filled files; time (timeoutMs) and size limits bound the work instead.
      maxDecompressionRatio: Infinity,
      onReadEntry: (entry: ReadEntry) => {
        if (!done) {
          try {
            visit(entry);
          } catch (err) {
            finish(err);
          }
        }
        entry.resume();
      },
    });
    // Keep this listener for the parser's whole life: an 'error' with no listener would throw.
    parser.on("error", (err: unknown) => finish(err));
    parser.on("end", () => finish());
    input?.on("error", (err) => finish(err));
    if (signal?.aborted) return finish(signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    if (input) input.pipe(parser);
    else parser.end(source as Buffer);
  });
}
