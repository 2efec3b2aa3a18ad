// Archive downloads: to a file (temp file + rename, sha256 verified) or as a stream, with progress.
import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, unlink } from "node:fs/promises";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { BerthApiError, isAbortError, unreachableError } from "./errors.js";

/** Called as bytes arrive; `total` is the archive's size from `Content-Length`, or `null` when unknown. */
export type DownloadProgress = (bytes: number, total: number | null) => void;

/** Download into a file. */
export interface DownloadToFileOptions {
  /** Where to write; by default `<workspace>.tar.gz` in the working directory. Written only once verified. */
  file?: string;
  /** The change-only archive (`?changes=only`): what the task added and modified, and `.berth-deleted`. */
  changesOnly?: boolean;
  onProgress?: DownloadProgress;
  signal?: AbortSignal;
}

/** Download as a stream: the archive's bytes, which error at the end if they do not match the `ETag` sha256. */
export interface DownloadStreamOptions {
  stream: true;
  changesOnly?: boolean;
  onProgress?: DownloadProgress;
  signal?: AbortSignal;
}

/** Outcome of a download into a file. */
export interface DownloadResult {
  /** The file written (as given, or the default name). */
  path: string;
  bytes: number;
  /** Hex sha256 of the bytes written; equal to the task view's `archive.sha256`. */
  sha256: string;
}

const checksumMismatch = (what: string, expected: string, actual: string) =>
  new BerthApiError(
    0,
    "checksum_mismatch",
    `The downloaded ${what} is corrupt: sha256 ${actual}, expected ${expected}. Download it again.`,
  );

/** Counts, hashes and reports bytes passing through; fails at the end when `expectedSha256` is given and differs. */
function meter(
  res: Response,
  what: string,
  expectedSha256: string | undefined,
  onProgress?: DownloadProgress,
): Transform & { sha256(): string; bytes(): number } {
  const hash = createHash("sha256");
  const length = res.headers.get("content-length");
  const total = length !== null && /^\d+$/.test(length) ? Number(length) : null;
  let bytes = 0;
  let digest: string | undefined;
  const t = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      bytes += chunk.length;
      onProgress?.(bytes, total);
      done(null, chunk);
    },
    flush(done) {
      digest = hash.digest("hex");
      if (expectedSha256 !== undefined && digest !== expectedSha256) return done(checksumMismatch(what, expectedSha256, digest));
      done();
    },
  });
  return Object.assign(t, { sha256: () => digest ?? "", bytes: () => bytes });
}

const bodyOf = (res: Response): Readable =>
  res.body ? Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>) : Readable.from([]);

/** The sha256 named by an `ETag: "<hex>"` header, if there is one. */
export function etagSha256(res: Response): string | undefined {
  const m = /^(?:W\/)?"([0-9a-f]{64})"$/i.exec(res.headers.get("etag") ?? "");
  return m?.[1]?.toLowerCase();
}

/** Streams an archive response, verifying it against the `ETag` sha256 when the server sent one. */
export function streamArchive(res: Response, url: string, onProgress?: DownloadProgress): Readable {
  const m = meter(res, "archive", etagSha256(res), onProgress);
  const source = bodyOf(res);
  source.on("error", (err) => m.destroy(isAbortError(err) ? err : unreachableError(url, err)));
  return source.pipe(m);
}

/**
 * Writes an archive response to `file` through a temp file in the same directory, renamed into place only
 * when the bytes' sha256 equals `expectedSha256`; on any failure the temp file is removed and `file` is untouched.
 */
export async function saveArchive(
  res: Response,
  url: string,
  file: string,
  expectedSha256: string,
  onProgress?: DownloadProgress,
): Promise<DownloadResult> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString("hex")}.part`);
  const m = meter(res, `archive for ${file}`, expectedSha256, onProgress);
  try {
    await pipeline(bodyOf(res), m, createWriteStream(tmp, { flags: "wx", mode: 0o644 }));
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    // File-system errors carry a syscall (open, write, rename); anything else broke the transfer.
    if (err instanceof BerthApiError || isAbortError(err) || (err as { syscall?: unknown }).syscall !== undefined) throw err;
    throw unreachableError(url, err);
  }
  return { path: file, bytes: m.bytes(), sha256: m.sha256() };
}
