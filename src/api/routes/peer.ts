// What a worker host serves to berth's API processes on other hosts (BERTH_ADVERTISE_URL): the live workspaces on its
// disk, by workspace name, only to requests signed with BERTH_CLUSTER_SECRET (peer-auth.ts). The same answers as
// the public files API gives for a workspace on the API's own host (routes/files.ts).
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Deps } from "../../app/deps.js";
import { WORKSPACE_PATTERN } from "../../domain/task.js";
import { BerthError } from "../../errors.js";
import { listWorkspace, openWorkspaceFile, parseRelativePath } from "../../workspace/safe-path.js";
import { workspacePath } from "../../workspace/workspace.js";
import { sendFile } from "../file-reply.js";
import { checkSignature, SIGNATURE_HEADER } from "../peer-auth.js";

export const PEER_PREFIX = "/internal/v1/workspaces";

/** Path of a workspace's listing (no `rel`) or of one file on a peer, URL-encoded. */
export const peerPath = (workspace: string, parts?: readonly string[]) =>
  `${PEER_PREFIX}/${workspace}/files${parts ? `/${parts.map(encodeURIComponent).join("/")}` : ""}`;

export async function peerRoutes(app: FastifyInstance, { deps }: { deps: Deps }): Promise<void> {
  const secret = deps.config.cluster.secret;
  const root = deps.config.dirs.workspaces;
  app.addHook("onRequest", async (request) => {
    const header = request.headers[SIGNATURE_HEADER];
    const why = secret
      ? checkSignature(secret, request.method, request.url, Array.isArray(header) ? header[0] : header)
      : "this host has no BERTH_CLUSTER_SECRET";
    if (why !== null)
      throw new BerthError("unauthorized", `Refused: ${why}. Requests between berth's hosts are signed with BERTH_CLUSTER_SECRET.`);
  });

  const dirOf = (request: FastifyRequest) => {
    const ws = (request.params as { workspace?: string }).workspace ?? "";
    if (!WORKSPACE_PATTERN.test(ws)) throw new BerthError("not_found", `No workspace "${ws.slice(0, 80)}" on this host.`);
    return workspacePath(root, ws);
  };

  app.get(`${PEER_PREFIX}/:workspace/files`, async (request) => listWorkspace(dirOf(request)));

  app.get(`${PEER_PREFIX}/:workspace/files/*`, async (request, reply) => {
    const dir = dirOf(request);
    const parts = parseRelativePath((request.params as { "*": string })["*"]);
    if (parts.length === 0) throw new BerthError("invalid_input", "Name a file, or list the workspace with GET /v1/tasks/:id/files.");
    const rel = parts.join("/");
    const { handle, size } = await openWorkspaceFile(dir, rel);
    if (size === 0) await handle.close();
    return sendFile(reply, rel, {
      size,
      stream: size === 0 ? null : handle.createReadStream({ start: 0, end: size - 1, autoClose: true }),
    });
  });
}
