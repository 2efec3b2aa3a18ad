// Writes one archive into the object store as it is made (s3-store.ts owns the client).
//
// The first PART_BYTES are held in memory: an archive that ends within them (most do) goes up in one PutObject at
// commit, with its sha256 as metadata, so it appears complete or not at all. A larger one streams as a multipart
// upload (@aws-sdk/lib-storage, bounded queue) while it is made; the upload is completed only at commit, after the
// archive was verified, and its sha256 is then set as metadata (S3 takes metadata when a multipart upload starts,
// before any byte is known, so it is set afterwards with an in-place CopyObject). Whatever goes wrong, `abort`
// aborts the multipart upload (no parts are left) or deletes what a half-finished commit may have published.
import { PassThrough } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import type { ArchiveWriter } from "./archive-store.js";

/** Part size of a multipart upload; an archive up to this size goes up in one PutObject once it is complete. */
export const PART_BYTES = 8 * 1024 * 1024;
/** Parts uploaded at once; with the part being filled and the stream's buffer, an upload holds about 4 parts in memory. */
const QUEUE = 2;
/** CopyObject, which sets the metadata of a multipart archive, takes objects up to 5 GiB; larger ones carry none. */
const COPY_MAX_BYTES = 5 * 1024 ** 3;
/** How long `abort` waits for the upload's requests in flight to settle before it aborts the upload itself. */
const SETTLE_MS = 5_000;
const CONTENT_TYPE = "application/gzip";
/** After an abort the store did not answer: how often, and how many times, the object is deleted in the background. */
const LATER_INTERVAL_MS = 5_000;
const LATER_ATTEMPTS = 120;

const statusOf = (err: unknown) => (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;

export class S3ArchiveWriter implements ArchiveWriter {
  private head: Buffer[] = [];
  private headBytes = 0;
  private body: PassThrough | undefined;
  private upload: Upload | undefined;
  private uploaded: Promise<void> | undefined;
  private failed: Error | undefined;
  private rejectFailure: (err: Error) => void = () => undefined;
  /** Rejects when the writer fails (the store, the deadline, abort): every wait races it, so none outlives a failure. */
  private readonly failure = new Promise<never>((_, reject) => {
    this.rejectFailure = reject;
  });
  /** Set once a request that may publish the object (PutObject, the upload's completion) has been sent. */
  private publishing = false;

  constructor(
    private readonly client: S3Client,
    private readonly target: { readonly Bucket: string; readonly Key: string },
    private readonly signal: AbortSignal,
    private readonly wrap: (err: unknown, what: string) => Error,
  ) {
    this.failure.catch(() => undefined);
    if (signal.aborted) this.fail(signal.reason);
    else signal.addEventListener("abort", () => this.fail(signal.reason), { once: true });
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failed) throw this.failed;
    if (!this.body) {
      this.head.push(chunk);
      this.headBytes += chunk.length;
      if (this.headBytes > PART_BYTES) this.startUpload();
      return;
    }
    const body = this.body;
    // When the upload fails, lib-storage stops reading and destroys the stream before it reports why: wait for the
    // failure (its cause), never for a drain that will not come.
    if (body.destroyed || !body.write(chunk)) await Promise.race([new Promise((resolve) => body.once("drain", resolve)), this.failure]);
  }

  async commit(written: { readonly bytes: number; readonly sha256: string }): Promise<void> {
    if (this.failed) throw this.failed;
    const metadata = { sha256: written.sha256 };
    if (!this.body) {
      this.publishing = true;
      const body = Buffer.concat(this.head, this.headBytes);
      const put = new PutObjectCommand({
        ...this.target,
        Body: body,
        ContentLength: body.length,
        ContentType: CONTENT_TYPE,
        Metadata: metadata,
      });
      await this.race(this.client.send(put, { abortSignal: this.signal }), "upload the archive");
      return;
    }
    this.publishing = true;
    this.body.end();
    await this.race(this.uploaded as Promise<void>, "upload the archive");
    if (written.bytes > COPY_MAX_BYTES) return; // the record holds its sha256; CopyObject cannot take it
    const copy = new CopyObjectCommand({
      ...this.target,
      CopySource: `${this.target.Bucket}/${encodeURI(this.target.Key)}`,
      MetadataDirective: "REPLACE",
      Metadata: metadata,
      ContentType: CONTENT_TYPE,
    });
    await this.race(this.client.send(copy, { abortSignal: this.signal }), "set the archive's sha256 metadata");
  }

  async abort(): Promise<void> {
    this.fail(new Error("the archive was abandoned"));
    const opts = { abortSignal: AbortSignal.timeout(SETTLE_MS * 2) };
    if (this.upload) {
      // lib-storage aborts the multipart upload once its requests in flight settle; wait for that (bounded), then
      // abort it here too, in case it could not (NoSuchUpload when it already did).
      await Promise.race([this.uploaded?.catch(() => undefined), new Promise((r) => setTimeout(r, SETTLE_MS).unref())]);
      const UploadId = this.upload.uploadId;
      if (UploadId) await this.client.send(new AbortMultipartUploadCommand({ ...this.target, UploadId }), opts).catch(() => undefined);
    }
    // A commit cut short may still have published the object: remove it (deleting a missing key succeeds). A store
    // that does not answer now may still store what it was sent once it does: keep at it in the background.
    if (this.publishing) {
      const deleted = await this.client.send(new DeleteObjectCommand(this.target), opts).then(
        () => true,
        () => false,
      );
      if (!deleted) void this.deleteLater();
    }
  }

  /** Deletes the object once the store answers again, and makes sure a request it was still holding did not publish it. */
  private async deleteLater(): Promise<void> {
    const wait = () => new Promise((r) => setTimeout(r, LATER_INTERVAL_MS).unref());
    for (let attempt = 0; attempt < LATER_ATTEMPTS; attempt++) {
      await wait();
      try {
        await this.client.send(new DeleteObjectCommand(this.target), { abortSignal: AbortSignal.timeout(LATER_INTERVAL_MS) });
        await wait();
        await this.client.send(new HeadObjectCommand(this.target), { abortSignal: AbortSignal.timeout(LATER_INTERVAL_MS) });
        // Still (or again) there: delete it on the next round.
      } catch (err) {
        if (statusOf(err) === 404) return; // gone, and it stayed gone
      }
    }
  }

  private startUpload(): void {
    const body = new PassThrough();
    // The upload reads the stream and sees its error; this listener keeps Node from calling it unhandled.
    body.on("error", () => undefined);
    this.body = body;
    this.upload = new Upload({
      client: this.client,
      params: { ...this.target, Body: body, ContentType: CONTENT_TYPE },
      partSize: PART_BYTES,
      queueSize: QUEUE,
      leavePartsOnError: false,
    });
    this.uploaded = this.upload.done().then(() => undefined);
    this.uploaded.catch((err: unknown) => this.fail(this.wrap(err, "upload the archive")));
    for (const chunk of this.head) body.write(chunk);
    this.head = [];
  }

  /** Waits for `p`, or fails as soon as the writer does; `what` words the store's error. */
  private async race<T>(p: Promise<T>, what: string): Promise<T> {
    try {
      return await Promise.race([p, this.failure]);
    } catch (err) {
      const e = this.failed ?? this.wrap(err, what);
      this.fail(e);
      throw e;
    }
  }

  private fail(reason: unknown): void {
    if (this.failed) return;
    this.failed = reason instanceof Error ? reason : new Error(String(reason));
    this.rejectFailure(this.failed);
    // The upload's reader sees the error and stops; lib-storage then aborts the multipart upload.
    this.body?.destroy(this.failed);
  }
}
