// Task routes: submit, read, list, cancel, delete (shared/API.md §3).
import type { FastifyInstance, FastifyRequest } from "fastify";
import { MAX_WAIT_SECONDS, TASK_STATUSES, isFinalStatus, type TaskStatus } from "../../contract/types.js";
import { validateSubmit } from "../../domain/validate.js";
import { invalidInput } from "../../errors.js";
import { deleteTask } from "../../cleanup/remove-task.js";
import { LIST_FIELD_MAX_BYTES, toListView, toView } from "../views.js";
import { indexMember } from "../../store/task-store.js";
import type { ApiContext } from "../context.js";
import { mergePages } from "../merge-pages.js";

export async function taskRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const { services, deps } = ctx;

  // The one route with a large body (its `files`); every other route takes the server's small default.
  app.post("/v1/tasks", { bodyLimit: deps.config.http.maxBodyBytes }, async (request, reply) => {
    const tenant = ctx.auth.tenantOf(request);
    const header = request.headers["idempotency-key"];
    const input = validateSubmit(request.body, deps.config, Array.isArray(header) ? header[0] : header);
    const { record, created } = await services.queue.submit(tenant, input);
    ctx.audit.note(request, { tenant, taskId: record.id });
    request.log.info({ taskId: record.id, tenant, created }, created ? "task queued" : "idempotent submit matched an existing task");
    return reply
      .code(created ? 202 : 200)
      .header("location", `/v1/tasks/${record.id}`)
      .send(toView(record));
  });

  // `?waitSeconds=N` (up to 60): a long poll that answers as soon as the task has ended, or after N seconds.
  app.get("/v1/tasks/:id", async (request, reply) => {
    const waitMs = waitParam(request) * 1000;
    const record = await ctx.findTask(request);
    if (waitMs === 0 || isFinalStatus(record.status)) return toView(record);
    const gone = new AbortController();
    const onClose = () => gone.abort();
    reply.raw.once("close", onClose);
    try {
      // Re-read every few seconds per waiter: only the status, however large the record.
      await ctx.waiter.until(record.id, waitMs, gone.signal, async () => {
        const now = await services.store.getStatus(record.id);
        return !now || isFinalStatus(now.status);
      });
    } finally {
      reply.raw.off("close", onClose);
    }
    return toView(await ctx.findTask(request));
  });

  // A tenant key lists its own tasks; an admin key any tenant's (`?tenant=`), or every tenant's merged.
  app.get("/v1/tasks", async (request) => {
    const scope = ctx.scopeOf(request);
    const q = request.query as Record<string, string | undefined>;
    const status = q.status as TaskStatus | undefined;
    if (status !== undefined && !TASK_STATUSES.includes(status)) {
      throw invalidInput(`Invalid status: must be one of ${TASK_STATUSES.join(", ")}.`, { field: "status" });
    }
    let label: [string, string] | undefined;
    if (q.label !== undefined) {
      const at = q.label.indexOf(":");
      if (at < 1) throw invalidInput("Invalid label: use label=key:value.", { field: "label" });
      label = [q.label.slice(0, at), q.label.slice(at + 1)];
    }
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500)
      throw invalidInput("Invalid limit: must be a whole number from 1 to 500.", { field: "limit" });
    const cursor = q.cursor === undefined ? null : decodeCursor(q.cursor);
    const list = (tenant: string) => services.store.list(tenant, { limit, cursor, status, label, fieldMaxBytes: LIST_FIELD_MAX_BYTES });
    const page = scope !== null ? await list(scope) : mergePages(await Promise.all(ctx.tenants().map(list)), indexMember, limit);
    return { tasks: page.records.map(toListView), nextCursor: page.nextCursor ? Buffer.from(page.nextCursor).toString("base64url") : null };
  });

  // An admin key cancels and deletes any tenant's task, as that tenant would.
  app.delete("/v1/tasks/:id", async (request, reply) => {
    const found = await ctx.findTask(request);
    await deleteTask(deps, services, found.tenant, found.id);
    return reply.code(204).send();
  });

  app.post("/v1/tasks/:id/cancel", async (request, reply) => {
    const found = await ctx.findTask(request);
    const record = await services.queue.cancel(found.tenant, found.id);
    return reply.code(202).send(toView(record));
  });
}

function waitParam(request: FastifyRequest): number {
  const raw = (request.query as Record<string, string | undefined>).waitSeconds;
  if (raw === undefined) return 0;
  const n = Number(raw);
  if (!/^\d{1,3}$/.test(raw) || n > MAX_WAIT_SECONDS) {
    throw invalidInput(`Invalid waitSeconds: must be a whole number from 0 to ${MAX_WAIT_SECONDS}.`, { field: "waitSeconds" });
  }
  return n;
}

function decodeCursor(raw: string): string {
  const decoded = Buffer.from(raw, "base64url").toString("utf8");
  if (!/^\d{15}\|[A-Za-z0-9_-]{8,64}$/.test(decoded))
    throw invalidInput("Invalid cursor: pass back nextCursor from the previous page unchanged.", { field: "cursor" });
  return decoded;
}
