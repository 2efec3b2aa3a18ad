// A task's workspace: a listing and a file's raw bytes, during the run and after. Never through a symbolic link.
// Where they are read from depends on the task, not on which API process is asked:
// - a finished task with an archive: out of its archive, streamed from the archive store (any host);
// - a running task (or one whose archive could not be made): its live workspace, on this host's disk if it runs
//   here, else from the worker host that runs it (signed request to its BERTH_ADVERTISE_URL), else 409.
import { lstat } from "node:fs/promises";
import type { FastifyInstance, FastifyReply } from "fastify";
import { z } from "zod";
import { listArchiveFiles, openArchiveFile, type OpenArchive } from "../../archive/archive-files.js";
import { isFinalStatus } from "../../contract/types.js";
import type { TaskRecord } from "../../domain/task.js";
import { BerthError } from "../../errors.js";
import { listWorkspace, openWorkspaceFile, parseRelativePath } from "../../workspace/safe-path.js";
import { workspacePath } from "../../workspace/workspace.js";
import { assertNotExpired, type ApiContext } from "../context.js";
import { sendFile } from "../file-reply.js";
import { relayFromPeer } from "../peer-client.js";
import { errors, FileListSchema, FileParams, raw, TaskParams } from "../schemas.js";
import { peerPath } from "./peer.js";

type Source = { kind: "archive" } | { kind: "local" } | { kind: "peer"; nodeId: string; baseUrl: string; secret: string };

export async function fileRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const { deps, services } = ctx;
  const root = deps.config.dirs.workspaces;

  async function sourceOf(record: TaskRecord): Promise<Source> {
    if (isFinalStatus(record.status) && record.archive) return { kind: "archive" };
    if (record.host === null || record.host === deps.host) return { kind: "local" };
    const secret = deps.config.cluster.secret;
    const baseUrl = await services.workers.addressOf(record.host);
    if (!baseUrl || !secret) {
      const why = !secret
        ? "this API process has no BERTH_CLUSTER_SECRET to ask it with"
        : "that host does not advertise BERTH_ADVERTISE_URL (or has not been heard from for a while)";
      throw new BerthError(
        "task_on_other_host",
        `Task "${record.id}" ${isFinalStatus(record.status) ? "ran" : "runs"} on host "${record.host}", and its workspace is on that host's disk: ${why}.`,
        { host: record.host },
      );
    }
    return { kind: "peer", nodeId: record.host, baseUrl, secret };
  }

  const openArchive =
    (record: TaskRecord, signal: AbortSignal): OpenArchive =>
    async () =>
      (await deps.archives.read(record.workspace, undefined, signal))?.stream ?? null;

  const listing = {
    summary: "List a task's workspace",
    description:
      "The workspace, also while the task runs (a finished task's from its archive). Symbolic links are listed, never followed. 409 task_on_other_host when it runs on a host this process cannot reach.",
    tags: ["output"],
    params: TaskParams,
    response: { 200: FileListSchema, ...errors(401, 404, 409, 410) },
  };
  app.get("/v1/tasks/:id/files", { schema: listing }, async (request, reply) => {
    const record = await ctx.findTask(request);
    assertNotExpired(record, "workspace");
    if (record.status === "queued") return { files: [], truncated: false };
    const source = await sourceOf(record);
    const signal = closeSignal(reply);
    if (source.kind === "archive") return listArchiveFiles(openArchive(record, signal), signal);
    if (source.kind === "peer") return relayFromPeer(reply, source, peerPath(record.workspace), signal);
    const dir = workspacePath(root, record.workspace);
    try {
      return await listWorkspace(dir);
    } catch (err) {
      // A task is "running" a moment before its worker (on this host) has made the workspace: nothing there yet.
      if (record.status === "running" && !(await exists(dir))) return { files: [], truncated: false };
      throw gone(record.id, err);
    }
  });

  const file = {
    summary: "A file of a task's workspace",
    description: "Its raw bytes. A path that is, or passes through, a symbolic link, or leaves the workspace, answers 404.",
    tags: ["output"],
    params: FileParams,
    response: {
      200: raw("application/octet-stream", "The file's bytes", z.string().meta({ format: "binary" })),
      ...errors(400, 401, 404, 409, 410),
    },
  };
  app.get("/v1/tasks/:id/files/*", { schema: file }, async (request, reply) => {
    const record = await ctx.findTask(request);
    assertNotExpired(record, "workspace");
    const parts = parseRelativePath((request.params as { "*": string })["*"]);
    if (parts.length === 0) throw new BerthError("invalid_input", "Name a file, or list the workspace with GET /v1/tasks/:id/files.");
    const rel = parts.join("/");
    if (record.status === "queued") throw new BerthError("not_found", `No file "${rel}" yet: the task has not started.`, { path: rel });
    const source = await sourceOf(record);
    const signal = closeSignal(reply);
    if (source.kind === "archive") return sendFile(reply, rel, await openArchiveFile(openArchive(record, signal), parts, signal));
    if (source.kind === "peer") return relayFromPeer(reply, source, peerPath(record.workspace, parts), signal);
    return sendLocal(reply, workspacePath(root, record.workspace), rel);
  });
}

/** A file of a workspace on this host's disk, opened without following any link (workspace/safe-path.ts). */
async function sendLocal(reply: FastifyReply, dir: string, rel: string): Promise<FastifyReply> {
  const { handle, size } = await openWorkspaceFile(dir, rel);
  if (size === 0) await handle.close();
  return sendFile(reply, rel, { size, stream: size === 0 ? null : handle.createReadStream({ start: 0, end: size - 1, autoClose: true }) });
}

const exists = (p: string): Promise<boolean> =>
  lstat(p).then(
    () => true,
    () => false,
  );

/** Aborted when the response is closed (sent, or the client went away): stops reading the archive or the host. */
function closeSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once("close", () => ac.abort(new Error("the response was closed")));
  return ac.signal;
}

function gone(id: string, err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  return new BerthError("not_found", `Task "${id}" has no workspace on this server.`, {}, { cause: err });
}
