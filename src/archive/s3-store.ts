// Archives in an S3-compatible bucket every host shares (BERTH_ARCHIVE_STORE=s3://bucket/prefix): the only module
// with the AWS SDK. Keys are `<prefix>/<workspace>.tar.gz`; each object carries its sha256 as metadata (`sha256`).
//
// Writing (s3-writer.ts): small archives go up in one PutObject once complete; larger ones stream as a multipart
// upload while they are made, and the upload is completed only once the archive has been verified; a failed or
// aborted one is aborted on the store, so no object and no parts are left. Every call has a timeout
// (connection, idle socket, and a few retries), so a store that is down fails archives with a reason, never hangs.
import { randomBytes } from "node:crypto";
import { open, rm } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  NoSuchKey,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import type { ArchiveStoreConfig } from "../config/config.js";
import { BerthError, errnoOf } from "../errors.js";
import {
  STORED_KINDS,
  storedName,
  type ArchiveRead,
  type ArchiveStore,
  type ArchiveWriter,
  type ByteRange,
  type StoredKind,
} from "./archive-store.js";
import { S3ArchiveWriter } from "./s3-writer.js";

type S3Config = Extract<ArchiveStoreConfig, { kind: "s3" }>;

/** Bounds on every request: connecting, a socket idle mid-request, and attempts (the SDK retries with backoff). */
export const S3_TIMEOUTS = { connectMs: 5_000, idleMs: 20_000, attempts: 3 } as const;
/** DeleteObjects takes at most this many keys: an archive and its companions for this many workspaces. */
const DELETE_BATCH = Math.floor(1000 / STORED_KINDS.length);

export class S3ArchiveStore implements ArchiveStore {
  readonly kind = "s3";
  readonly shared = true;
  readonly description: string;
  private readonly client: S3Client;

  /** `localDir` (BERTH_ARCHIVE_DIR) holds temporary downloads for {@link localCopy}. */
  constructor(
    private readonly cfg: S3Config,
    private readonly localDir: string,
  ) {
    this.description = `s3://${cfg.bucket}${cfg.prefix ? `/${cfg.prefix}` : ""}${cfg.endpoint ? ` at ${cfg.endpoint}` : ` (AWS, ${cfg.region})`}`;
    this.client = new S3Client({
      region: cfg.region,
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      forcePathStyle: cfg.forcePathStyle,
      ...(cfg.credentials ? { credentials: cfg.credentials } : {}),
      // Checksums only where the API requires them: S3-compatible stores (Ceph RGW) refuse the SDK's default
      // flexible checksums on streamed bodies, and the archive's own sha256 is checked by berth anyway.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      maxAttempts: S3_TIMEOUTS.attempts,
      requestHandler: { connectionTimeout: S3_TIMEOUTS.connectMs, requestTimeout: S3_TIMEOUTS.idleMs },
    });
  }

  private key(workspace: string, kind: StoredKind = "archive"): string {
    // storedName checks the name is a workspace name berth makes, so a key never holds anything else.
    const name = storedName(workspace, kind);
    return this.cfg.prefix ? `${this.cfg.prefix}/${name}` : name;
  }

  locate(workspace: string, kind: StoredKind = "archive"): string {
    return `s3://${this.cfg.bucket}/${this.key(workspace, kind)}`;
  }

  async begin(workspace: string, signal: AbortSignal, kind: StoredKind = "archive"): Promise<ArchiveWriter> {
    signal.throwIfAborted();
    return new S3ArchiveWriter(this.client, { Bucket: this.cfg.bucket, Key: this.key(workspace, kind) }, signal, (err, what) =>
      this.failure(err, what),
    );
  }

  async read(workspace: string, range?: ByteRange, signal?: AbortSignal, kind: StoredKind = "archive"): Promise<ArchiveRead | null> {
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.cfg.bucket,
          Key: this.key(workspace, kind),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
        { abortSignal: signal ?? AbortSignal.timeout(S3_TIMEOUTS.idleMs) },
      );
      const size = range ? Number(/\/(\d+)$/.exec(res.ContentRange ?? "")?.[1] ?? Number.NaN) : (res.ContentLength ?? Number.NaN);
      const stream = res.Body as Readable;
      if (!Number.isSafeInteger(size)) {
        stream.destroy();
        throw new Error(`the store did not say the archive's size (Content-Range ${JSON.stringify(res.ContentRange)})`);
      }
      return { stream, size };
    } catch (err) {
      if (err instanceof NoSuchKey || statusOfS3(err) === 404) return null;
      throw this.failure(err, `read ${this.locate(workspace, kind)}`);
    }
  }

  async localCopy(workspace: string, signal: AbortSignal): Promise<{ path: string; dispose(): Promise<void> } | null> {
    const got = await this.read(workspace, undefined, signal);
    if (!got) return null;
    // Named like an archive temp file, so cleanup recognises one a crash left behind.
    const file = path.join(this.localDir, `.${workspace}.tar.gz.tmp-${randomBytes(8).toString("hex")}`);
    const dispose = () => rm(file, { force: true });
    try {
      const fh = await open(file, "wx", 0o600);
      await pipeline(got.stream, fh.createWriteStream(), { signal });
    } catch (err) {
      got.stream.destroy();
      await dispose();
      throw this.failure(err, `download ${this.locate(workspace)}`);
    }
    return { path: file, dispose };
  }

  async remove(workspaces: readonly string[]): Promise<Map<string, Error>> {
    const failed = new Map<string, Error>();
    for (let i = 0; i < workspaces.length; i += DELETE_BATCH) {
      const batch = workspaces.slice(i, i + DELETE_BATCH);
      const byKey = new Map(batch.flatMap((w) => STORED_KINDS.map((kind): [string, string] => [this.key(w, kind), w])));
      try {
        // Deleting a key that is not there succeeds: a missing archive is not an error.
        const res = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.cfg.bucket,
            Delete: { Objects: [...byKey.keys()].map((Key) => ({ Key })), Quiet: true },
          }),
          { abortSignal: AbortSignal.timeout(S3_TIMEOUTS.idleMs * S3_TIMEOUTS.attempts) },
        );
        for (const e of res.Errors ?? []) {
          const w = byKey.get(e.Key ?? "");
          if (w && e.Code !== "NoSuchKey")
            failed.set(w, new Error(`could not delete ${this.locate(w)}: ${e.Code ?? "error"} ${e.Message ?? ""}`.trim()));
        }
      } catch (err) {
        const e = this.failure(err, "delete archives");
        for (const w of batch) failed.set(w, e);
      }
    }
    return failed;
  }

  async abortStaleUploads(beforeMs: number): Promise<number> {
    let aborted = 0;
    let KeyMarker: string | undefined;
    let UploadIdMarker: string | undefined;
    const opts = () => ({ abortSignal: AbortSignal.timeout(S3_TIMEOUTS.idleMs * S3_TIMEOUTS.attempts) });
    // Bounded: a few pages per pass; the next pass goes on.
    for (let page = 0; page < 10; page++) {
      const res = await this.client
        .send(
          new ListMultipartUploadsCommand({
            Bucket: this.cfg.bucket,
            Prefix: this.cfg.prefix ? `${this.cfg.prefix}/` : undefined,
            KeyMarker,
            UploadIdMarker,
          }),
          opts(),
        )
        .catch((err: unknown) => {
          throw this.failure(err, "list unfinished uploads");
        });
      for (const u of res.Uploads ?? []) {
        if (!u.Key || !u.UploadId || (u.Initiated?.getTime() ?? Number.POSITIVE_INFINITY) >= beforeMs) continue;
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.cfg.bucket, Key: u.Key, UploadId: u.UploadId }), opts()).then(
          () => aborted++,
          (err: unknown) => {
            if (statusOfS3(err) !== 404) throw this.failure(err, `abort the unfinished upload of ${u.Key}`);
          },
        );
      }
      if (!res.IsTruncated) break;
      KeyMarker = res.NextKeyMarker;
      UploadIdMarker = res.NextUploadIdMarker;
    }
    return aborted;
  }

  async check(timeoutMs: number): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.cfg.bucket }), { abortSignal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      throw this.startError(err, timeoutMs);
    }
  }

  close(): void {
    this.client.destroy();
  }

  /** A start-up or readiness failure, worded to name the setting to fix. */
  private startError(err: unknown, timeoutMs: number): BerthError {
    const status = statusOfS3(err);
    const where = this.cfg.endpoint ? `The object store at ${this.cfg.endpoint} (BERTH_S3_ENDPOINT)` : `AWS S3 in ${this.cfg.region}`;
    const details = { store: "s3", variable: "BERTH_ARCHIVE_STORE" };
    if (status === 404) {
      return new BerthError(
        "invalid_config",
        `Invalid BERTH_ARCHIVE_STORE: bucket "${this.cfg.bucket}" does not exist in ${where.replace(/^The /, "the ")}; create it first (berth does not create buckets).`,
        details,
      );
    }
    if (status === 403 || status === 400) {
      const creds = this.cfg.credentials
        ? "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        : "the AWS credential chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY unset)";
      return new BerthError(
        "invalid_config",
        `Invalid AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY: ${where.replace(/^The /, "the ")} refused the credentials from ${creds} for bucket "${this.cfg.bucket}" (HTTP ${status}).`,
        { ...details, variable: "AWS_ACCESS_KEY_ID" },
      );
    }
    if (status === 301) {
      return new BerthError(
        "invalid_config",
        `Invalid BERTH_S3_REGION: bucket "${this.cfg.bucket}" is not in ${this.cfg.region} (the store answered 301).`,
        { ...details, variable: "BERTH_S3_REGION" },
      );
    }
    const why = isTimeout(err) ? `no answer within ${timeoutMs} ms` : describe(err);
    return new BerthError(
      "dependency_unavailable",
      `${where} does not answer (${why}); check BERTH_S3_ENDPOINT and that the store is up.`,
      { ...details, variable: "BERTH_S3_ENDPOINT" },
      { cause: err },
    );
  }

  /** An error during an operation, worded to say which store failed and how. */
  private failure(err: unknown, what: string): Error {
    if (err instanceof BerthError) return err;
    const why = isTimeout(err) ? "it did not answer in time" : describe(err);
    return new BerthError(
      "dependency_unavailable",
      `The archive store ${this.description} failed to ${what}: ${why}.`,
      { store: "s3" },
      { cause: err },
    );
  }
}

function statusOfS3(err: unknown): number | undefined {
  return typeof err === "object" && err !== null && "$metadata" in err
    ? (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
    : undefined;
}

function isTimeout(err: unknown): boolean {
  const name = err instanceof Error ? err.name : "";
  return name === "TimeoutError" || name === "AbortError" || errnoOf(err) === "ETIMEDOUT";
}

function describe(err: unknown): string {
  if (err instanceof S3ServiceException)
    return `${err.name} (HTTP ${err.$metadata.httpStatusCode ?? "?"})${err.message && err.message !== "UnknownError" ? `: ${err.message}` : ""}`;
  const code = errnoOf(err);
  // The SDK wraps network errors ("AWS SDK error wrapper for Error: connect ECONNREFUSED ..."): keep what happened.
  const msg = (err instanceof Error ? err.message : String(err)).replace(/^AWS SDK error wrapper for (\w*Error: )?/, "");
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
