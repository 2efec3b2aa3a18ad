// The live workspace: a listing and a file's raw bytes, during the run and after. Never through a symbolic link.
import { lstat } from "node:fs/promises";
import { pipeline, Transform } from "node:stream";
import type { FastifyInstance } from "fastify";
import { BerthError } from "../../errors.js";
import { listWorkspace, openWorkspaceFile, parseRelativePath } from "../../workspace/safe-path.js";
import { workspacePath } from "../../workspace/workspace.js";
import { assertNotExpired, type ApiContext } from "../context.js";

export async function fileRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const root = ctx.deps.config.dirs.workspaces;

  app.get("/v1/tasks/:id/files", async (request) => {
    const record = await ctx.findTask(request);
    assertNotExpired(record, "workspace");
    if (record.status === "queued") return { files: [], truncated: false };
    const dir = workspacePath(root, record.workspace);
    try {
      return await listWorkspace(dir);
    } catch (err) {
      // A task is "running" a moment before its worker (on this host) has made the workspace: nothing there yet.
      const making = record.status === "running" && (record.host === null || record.host === ctx.deps.host);
      if (making && !(await exists(dir))) return { files: [], truncated: false };
      throw gone(record.id, err);
    }
  });

  app.get("/v1/tasks/:id/files/*", async (request, reply) => {
    const record = await ctx.findTask(request);
    assertNotExpired(record, "workspace");
    const raw = (request.params as { "*": string })["*"];
    const parts = parseRelativePath(raw);
    if (parts.length === 0) throw new BerthError("invalid_input", "Name a file, or list the workspace with GET /v1/tasks/:id/files.");
    const { handle, size } = await openWorkspaceFile(workspacePath(root, record.workspace), parts.join("/"));
    // The length is the size at open; a file still being written may end up longer (we stop at `size`) or shorter
    // (the response is then cut off, so the client sees a broken download instead of waiting for promised bytes).
    if (size === 0) await handle.close();
    const body =
      size === 0
        ? ""
        : pipeline(
            handle.createReadStream({ start: 0, end: size - 1, autoClose: true }),
            exactly(size, parts.join("/"), () => {
              // Nothing sent yet: let the error handler answer with JSON instead of the file's headers.
              if (!reply.raw.headersSent) for (const h of ["content-type", "content-length", "content-disposition"]) reply.removeHeader(h);
            }),
            () => undefined,
          );
    return reply
      .type("application/octet-stream")
      .header("content-length", String(size))
      .header("content-disposition", `attachment; filename="${sanitizeFilename(parts[parts.length - 1] as string)}"`)
      .send(body);
  });
}

const exists = (p: string): Promise<boolean> =>
  lstat(p).then(
    () => true,
    () => false,
  );

function gone(id: string, err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  return new BerthError("not_found", `Task "${id}" has no workspace on this server.`, {}, { cause: err });
}

/** Passes the file's bytes through and fails (cutting the response short) if fewer than `size` arrive. */
function exactly(size: number, rel: string, onShort: () => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      callback(null, chunk);
    },
    flush(callback) {
      if (seen === size) return callback();
      // Before the first byte this is still a clean 409; later the response is cut off (headers are already sent).
      onShort();
      callback(
        new BerthError("wrong_state", `File "${rel}" shrank from ${size} to ${seen} bytes while it was read; retry.`, { path: rel }),
      );
    },
  });
}

const sanitizeFilename = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 200) || "file";
