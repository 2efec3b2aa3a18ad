// Output and results of a task: plain-text logs and the archive download (with Range and If-Range), from whichever
// store holds it.
import { Readable } from "node:stream";
import type { FastifyInstance, FastifyReply } from "fastify";
import { makeChangeArchive } from "../../archive/change-archive.js";
import { z } from "zod";
import type { TaskRecord } from "../../domain/task.js";
import { BerthError } from "../../errors.js";
import type { LogReader } from "../../logs/log-reader.js";
import { assertNotExpired, type ApiContext } from "../context.js";
import { rangeOf } from "../range.js";
import { rawQuery } from "../raw-follow.js";
import { assertChangesKept } from "./changes.js";
import { errors, LogsQuery, raw, TaskParams } from "../schemas.js";
import { MAX_BUFFERED_BYTES } from "../follow-stream.js";

/** Said at the end of the plain-text log of a task whose output passed BERTH_MAX_OUTPUT_BYTES. */
export const TRUNCATED_NOTE = "[berth] output passed BERTH_MAX_OUTPUT_BYTES; what the task printed after that was dropped\n";

const binary = z.string().meta({ format: "binary" });

export async function artifactRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const { deps, services } = ctx;

  const logs = {
    summary: "A task's output",
    description:
      "With Accept: text/event-stream, Server-Sent Events: `log` events ({stream, text, time}) with ids, live while the task runs, then one `end` event ({status, exitCode}); Last-Event-ID or ?after= resumes. With ?follow=true (or ?stream=, ?offset=), the raw bytes as printed: text/plain, or Docker's multiplexed framing with Accept: application/vnd.docker.multiplexed-stream; live until the task ends, resumable by byte offset. Otherwise text/plain, stdout and stderr interleaved in order.",
    tags: ["output"],
    params: TaskParams,
    querystring: LogsQuery,
    response: {
      200: {
        description: "The output (text/plain), the live event stream (text/event-stream), or raw output in Docker's framing",
        content: {
          "text/plain": { schema: z.string() },
          "text/event-stream": { schema: z.string() },
          "application/vnd.docker.multiplexed-stream": { schema: binary },
        },
      },
      ...errors(400, 401, 404, 410, 429),
    },
  };
  app.get("/v1/tasks/:id/logs", { schema: logs }, async (request, reply) => {
    const record = await ctx.findTask(request);
    if (ctx.wantsEventStream(request)) return ctx.streamEvents(request, reply, record);
    const raw = rawQuery(request);
    assertNotExpired(record, "log");
    if (raw) return ctx.streamRaw(request, reply, record, raw);
    const releaseSlot = ctx.logStreams.acquire(record.tenant);
    reply.raw.once("close", releaseSlot);
    if (request.raw.socket.destroyed) releaseSlot();
    // One entry (≤ 64 KiB) waits in the stream at most: a client that stops reading stops the reads.
    const body = Readable.from(plainLog(ctx.logReader, record), { highWaterMark: 1 });
    return reply.type("text/plain; charset=utf-8").send(body);
  });

  // Change-only archives being made by this process, by workspace: a second request waits for the first.
  const making = new Map<string, Promise<{ bytes: number; sha256: string }>>();

  const archive = {
    summary: "A task's archive",
    description:
      "The finished workspace as tar.gz; ETag is its sha256 (the task's archive.sha256). Honours Range (206). 409 archive_not_ready before it exists, 410 once expired. With ?changes=only, only what the task added and changed, plus .berth-deleted.",
    tags: ["output"],
    params: TaskParams,
    querystring: z.looseObject({
      changes: z.string().optional().describe('"only": the change-only archive'),
    }),
    response: {
      200: raw("application/gzip", "The whole archive", binary),
      206: raw("application/gzip", "The requested range", binary),
      ...errors(400, 401, 404, 409, 410, 416, 429),
    },
  };
  app.get("/v1/tasks/:id/archive", { schema: archive }, async (request, reply) => {
    const record = await ctx.findTask(request);
    assertNotExpired(record, "archive");
    const only = (request.query as { changes?: string }).changes;
    if (only !== undefined) {
      if (only !== "only") throw new BerthError("invalid_input", `?changes= takes "only", got ${JSON.stringify(only.slice(0, 40))}.`);
      return sendChangeArchive(record, reply);
    }
    if (!record.archive) {
      const why = record.finishedAtMs
        ? `the archive could not be made${record.message ? `: ${record.message}` : ""}`
        : `the task is ${record.status}`;
      throw new BerthError("archive_not_ready", `Task "${record.id}" has no archive yet: ${why}.`, { status: record.status });
    }
    const { bytes, sha256 } = record.archive;
    // The archive's ETag is its sha256: RFC 9110 §13.1.5, a Range is honoured only while If-Range (if any) names it.
    const etag = `"${sha256}"`;
    const header = (name: string) => {
      const v = request.headers[name];
      return Array.isArray(v) ? v[0] : v;
    };
    const want = rangeOf(header("range"), header("if-range"), etag, bytes);
    if (want.kind === "unsatisfiable") {
      void reply.header("content-range", `bytes */${bytes}`);
      throw new BerthError("range_not_satisfiable", `The requested range is outside the archive (${bytes} bytes).`);
    }
    const range = want.kind === "range" ? { start: want.start, end: want.end } : undefined;
    const ac = new AbortController();
    reply.raw.once("close", () => ac.abort());
    // Only a complete, verified archive is ever stored under the task's name (see archive/archive.ts).
    const got = await deps.archives.read(record.workspace, range, ac.signal);
    if (!got) throw new BerthError("expired", `Task "${record.id}"'s archive is no longer in the archive store.`);
    if (got.size !== bytes) {
      got.stream.destroy();
      throw new Error(`the stored archive of task ${record.id} has ${got.size} bytes, its record says ${bytes}`);
    }
    if (range) void reply.code(206).header("content-range", `bytes ${range.start}-${range.end}/${bytes}`);
    return reply
      .header("accept-ranges", "bytes")
      .header("content-length", String(range ? range.end - range.start + 1 : bytes))
      .header("content-type", "application/gzip")
      .header("etag", etag)
      .header("content-disposition", `attachment; filename="${record.workspace}.tar.gz"`)
      .send(got.stream);
  });

  /** The change-only archive: made once (archive/change-archive.ts), then streamed from the store like the archive. */
  async function sendChangeArchive(record: TaskRecord, reply: FastifyReply): Promise<FastifyReply> {
    assertChangesKept(record);
    const ac = new AbortController();
    reply.raw.once("close", () => ac.abort());
    let made = record.changesArchive ?? null;
    let got = made ? await deps.archives.read(record.workspace, undefined, ac.signal, "delta") : null;
    if (!made || !got || got.size !== made.bytes) {
      got?.stream.destroy();
      let job = making.get(record.workspace);
      if (!job) {
        // Not tied to this request: a client that goes away does not waste the work for the next one.
        const signal = AbortSignal.timeout(deps.config.worker.archiveTimeoutSeconds * 1000);
        const mtime = new Date(record.finishedAtMs ?? 0);
        job = ctx.changeReads
          .run(record.tenant, () => makeChangeArchive({ store: deps.archives, workspace: record.workspace, mtime, signal }))
          .then(async (result) => {
            await services.store.patch(record.id, { changesArchive: result });
            return result;
          })
          .finally(() => making.delete(record.workspace));
        making.set(record.workspace, job);
      }
      made = await job;
      got = await deps.archives.read(record.workspace, undefined, ac.signal, "delta");
      if (!got) throw new BerthError("expired", `Task "${record.id}"'s archive is no longer in the archive store.`);
    }
    if (got.size !== made.bytes) {
      got.stream.destroy();
      throw new Error(`the stored change-only archive of task ${record.id} has ${got.size} bytes, its record says ${made.bytes}`);
    }
    return reply
      .header("content-length", String(made.bytes))
      .header("content-type", "application/gzip")
      .header("etag", `"${made.sha256}"`)
      .header("x-berth-sha256", made.sha256)
      .header("content-disposition", `attachment; filename="${record.workspace}.changes.tar.gz"`)
      .send(got.stream);
  }
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
