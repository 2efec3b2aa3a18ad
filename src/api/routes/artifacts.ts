// Output and results of a task: plain-text logs and the archive download (with Range).
import { Readable } from "node:stream";
import send from "@fastify/send";
import type { FastifyInstance } from "fastify";
import { BerthError } from "../../errors.js";
import { archivePath } from "../../workspace/workspace.js";
import { assertNotExpired, type ApiContext } from "../context.js";

export async function artifactRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const { services, deps } = ctx;

  app.get("/v1/tasks/:id/logs", async (request, reply) => {
    const record = await ctx.findTask(request);
    if (ctx.wantsEventStream(request)) return ctx.streamEvents(request, reply, record);
    assertNotExpired(record, "log");
    return reply.type("text/plain; charset=utf-8").send(Readable.from(services.logs.readText(record.id)));
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
      .header("etag", `"${record.archive.sha256}"`)
      .header("content-disposition", `attachment; filename="${record.workspace}.tar.gz"`)
      .send(result.stream);
  });
}
