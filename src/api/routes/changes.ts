// What a task changed in its workspace (API.md §5 "What changed"): the change list page by page and the unified
// diff, both read out of the archive store (archive/changes-read.ts, archive/change-diff.ts), so any API process
// answers them for any host's task, as long as the task's archive is kept.
import type { FastifyInstance, FastifyReply } from "fastify";
import { diffChanges } from "../../archive/change-diff.js";
import { readChangesPage } from "../../archive/changes-read.js";
import type { ChangeEntry, ChangeList } from "../../contract/types.js";
import type { ChangeRecord } from "../../domain/manifest.js";
import type { TaskRecord } from "../../domain/task.js";
import { BerthError } from "../../errors.js";
import { parseRelativePath } from "../../workspace/safe-path.js";
import { assertNotExpired, type ApiContext } from "../context.js";
import { ChangeListSchema, ChangesQuery, DiffQuery, errors, raw, TaskParams } from "../schemas.js";

/** Changes per page: the default and the most a client may ask for. */
export const CHANGES_PAGE = { default: 1000, max: 10_000 } as const;

export async function changeRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const { deps } = ctx;

  const changesSchema = {
    summary: "What a task changed",
    description:
      "Its workspace against its starting one, a page at a time in path order. 409 changes_not_available before the task has ended or when its changes were not recorded, 410 once expired.",
    tags: ["output"],
    params: TaskParams,
    querystring: ChangesQuery,
    response: { 200: ChangeListSchema, ...errors(400, 401, 404, 409, 410) },
  };
  app.get("/v1/tasks/:id/changes", { schema: changesSchema }, async (request, reply): Promise<ChangeList> => {
    const record = await ctx.findTask(request);
    const summary = assertChangesKept(record);
    const query = request.query as { limit?: string; cursor?: string };
    const limit = intParam("limit", query.limit, CHANGES_PAGE.default, 1, CHANGES_PAGE.max);
    const offset = intParam("cursor", query.cursor, 0, 0, Number.MAX_SAFE_INTEGER);
    const page = await readChangesPage(deps.archives, record.workspace, { offset, limit }, closeSignal(reply));
    return {
      changes: page.changes.map(toEntry),
      summary,
      nextCursor: page.more ? String(offset + page.changes.length) : null,
    };
  });

  const diffSchema = {
    summary: "A unified diff of what a task changed",
    description: "The changed text files (git's format); binary and large files are named, not diffed.",
    tags: ["output"],
    params: TaskParams,
    querystring: DiffQuery,
    response: { 200: raw("text/x-diff", "The unified diff"), ...errors(400, 401, 404, 409, 410, 429) },
  };
  app.get("/v1/tasks/:id/diff", { schema: diffSchema }, async (request, reply) => {
    const record = await ctx.findTask(request);
    assertChangesKept(record);
    const raw = (request.query as { path?: string }).path;
    const path = raw === undefined ? undefined : pathParam(raw);
    if (path === "") throw new BerthError("invalid_input", "?path= names no file; leave it out for the whole diff.");
    const signal = closeSignal(reply);
    const diff = await ctx.changeReads.run(record.tenant, () =>
      diffChanges({ store: deps.archives, workspace: record.workspace, path, signal }),
    );
    return reply
      .type("text/x-diff; charset=utf-8")
      .header("x-berth-diff-paths", String(diff.paths))
      .header("x-berth-diff-truncated", String(diff.cut))
      .send(diff.text);
  });
}

/** The task's change summary; 409 before it has ended or when its changes were not recorded, 410 once expired. */
export function assertChangesKept(record: TaskRecord): NonNullable<TaskRecord["changes"]> {
  assertNotExpired(record, "change list");
  if (!record.finishedAtMs) {
    throw new BerthError("changes_not_available", `Task "${record.id}" is ${record.status}: its changes are listed once it has ended.`, {
      status: record.status,
    });
  }
  if (!record.archive || !record.changes) {
    const why = !record.archive
      ? "it has no archive"
      : "its starting workspace could not be recorded, or it was archived before berth recorded changes";
    throw new BerthError("changes_not_available", `Task "${record.id}" has no change list: ${why}.`, { status: record.status });
  }
  return record.changes;
}

function toEntry(c: ChangeRecord): ChangeEntry {
  const now = c.after ?? c.before;
  const entry: ChangeEntry = {
    path: c.path,
    change: c.change,
    type: (now as NonNullable<typeof now>).type,
    size: c.after ? c.after.size : null,
    previousSize: c.before ? c.before.size : null,
  };
  if (c.change === "type_changed" && c.before) entry.previousType = c.before.type;
  return entry;
}

/** `?path=` as a workspace path; one that could not be one (absolute, "..") is a 400 naming why. */
function pathParam(raw: string): string {
  try {
    return parseRelativePath(raw).join("/");
  } catch (err) {
    if (err instanceof BerthError && err.code === "not_found")
      throw new BerthError("invalid_input", `?path=: ${err.message}`, { path: raw.slice(0, 200) });
    throw err;
  }
}

function intParam(name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new BerthError(
      "invalid_input",
      `?${name}= must be a whole number from ${min} to ${max}, got ${JSON.stringify(value.slice(0, 40))}.`,
    );
  }
  return n;
}

/** Aborted when the response is closed (sent, or the client went away): stops reading the store. */
export function closeSignal(reply: FastifyReply): AbortSignal {
  const ac = new AbortController();
  reply.raw.once("close", () => ac.abort(new Error("the response was closed")));
  return ac.signal;
}
