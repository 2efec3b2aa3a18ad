// Output and results of a task: plain-text logs and the archive download (with Range and If-Range).
import { Readable } from "node:stream";
import send from "@fastify/send";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { TaskRecord } from "../../domain/task.js";
import { BerthError } from "../../errors.js";
import type { LogReader } from "../../logs/log-reader.js";
import { archivePath } from "../../workspace/workspace.js";
import { assertNotExpired, type ApiContext } from "../context.js";
import { MAX_BUFFERED_BYTES } from "../sse.js";

/** Said at the end of the plain-text log of a task whose output passed BERTH_MAX_OUTPUT_BYTES. */
export const TRUNCATED_NOTE = "[berth] output passed BERTH_MAX_OUTPUT_BYTES; what the task printed after that was dropped\n";

export async function artifactRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const { deps } = ctx;

  app.get("/v1/tasks/:id/logs", async (request, reply) => {
    const record = await ctx.findTask(request);
    if (ctx.wantsEventStream(request)) return ctx.streamEvents(request, reply, record);
    assertNotExpired(record, "log");
    const releaseSlot = ctx.logStreams.acquire(record.tenant);
    reply.raw.once("close", releaseSlot);
    if (request.raw.socket.destroyed) releaseSlot();
    // One entry (≤ 64 KiB) waits in the stream at most: a client that stops reading stops the reads.
    const body = Readable.from(plainLog(ctx.logReader, record), { highWaterMark: 1 });
    return reply.type("text/plain; charset=utf-8").send(body);
  });

  app.get("/v1/tasks/:id/archive", async (request, reply) => {
    const record = await ctx.findTask(request);
    assertNotExpired(record, "archive");
    if (!record.archive) {
      const why = record.finishedAtMs
        ? `the archive could not be made${record.message ? `: ${record.message}` : ""}`
        : `the task is ${record.status}`;
      throw new BerthError("archive_not_ready", `Task "${record.id}" has no archive yet: ${why}.`, { status: record.status });
    }
    const etag = `"${record.archive.sha256}"`;
    applyIfRange(request, etag);
    const file = archivePath(deps.config.dirs.archives, record.workspace);
    // Only a complete, renamed archive is ever at this path (see archive/archive.ts).
    const result = await send(request.raw, file, {
      acceptRanges: true,
      etag: false,
      lastModified: false,
      cacheControl: false,
      dotfiles: "allow",
    });
    if (result.type === "error") {
      const status = (result.metadata as { error?: { status?: number } }).error?.status ?? 500;
      if (status === 416) {
        void reply.header("content-range", `bytes */${record.archive.bytes}`);
        throw new BerthError("range_not_satisfiable", `The requested range is outside the archive (${record.archive.bytes} bytes).`);
      }
      if (status === 404) throw new BerthError("expired", `Task "${record.id}"'s archive is no longer on disk.`);
      throw new Error(`archive send failed with status ${status}`);
    }
    return reply
      .code(result.statusCode)
      .headers(result.headers)
      .header("content-type", "application/gzip")
      .header("etag", etag)
      .header("content-disposition", `attachment; filename="${record.workspace}.tar.gz"`)
      .send(result.stream);
  });
}

/** The task's stdout and stderr as text; a note at the end when output was dropped. */
async function* plainLog(reader: LogReader, record: TaskRecord): AsyncGenerator<string> {
  let last = "";
  for await (const text of reader.readText(record.id, MAX_BUFFERED_BYTES)) {
    if (text.length > 0) last = text;
    yield text;
  }
  if (record.outputTruncated) yield `${last === "" || last.endsWith("\n") ? "" : "\n"}${TRUNCATED_NOTE}`;
}

/**
 * RFC 9110 §13.1.5: a Range is honoured only while the archive is the one the client has part of, i.e. If-Range
 * names its ETag (strong comparison). The archive's ETag is its sha256, which the file server does not know, so
 * the decision is made here: the header is consumed, and the Range dropped when it does not match.
 */
function applyIfRange(request: FastifyRequest, etag: string): void {
  const headers = request.raw.headers;
  const ifRange = headers["if-range"];
  if (typeof ifRange !== "string") return;
  delete headers["if-range"];
  if (ifRange.trim() !== etag) delete headers.range;
}
