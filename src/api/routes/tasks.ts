// Task routes: submit, read, list, cancel, delete (shared/API.md §3). Their shapes are in ../schemas.ts.
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { isFinalStatus } from "../../contract/types.js";
import { precheckSubmit, validateSubmit } from "../../domain/validate.js";
import { deleteTask } from "../../cleanup/remove-task.js";
import { LIST_FIELD_MAX_BYTES, toListView, toView } from "../views.js";
import { indexMember } from "../../store/task-store.js";
import type { ApiContext } from "../context.js";
import { mergePages } from "../merge-pages.js";
import { errors, GetTaskQuery, ListQuery, SubmitBodySchema, TaskListSchema, TaskParams, TaskViewSchema } from "../schemas.js";

export async function taskRoutes(fastify: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const { services, deps } = ctx;
  const app = fastify.withTypeProvider<ZodTypeProvider>();

  app.post(
    "/v1/tasks",
    {
      // The one route with a large body (its `files`); every other route takes the server's small default.
      bodyLimit: deps.config.http.maxBodyBytes,
      // Before the schema walks a huge command array element by element.
      preValidation: async (request) => precheckSubmit(request.body),
      schema: {
        summary: "Submit a task",
        description:
          "Queues the task and answers 202 with its view; the same idempotencyKey (or Idempotency-Key header) of the same tenant answers 200 with the task it made before.",
        tags: ["tasks"],
        headers: z.looseObject({ "idempotency-key": z.string().optional().describe("Same as the body's idempotencyKey") }),
        body: SubmitBodySchema,
        response: { 200: TaskViewSchema, 202: TaskViewSchema, ...errors(400, 401, 413, 429, 503) },
      },
    },
    async (request, reply) => {
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
    },
  );

  app.get(
    "/v1/tasks/:id",
    {
      schema: {
        summary: "Read a task",
        description: "With ?waitSeconds=N (up to 60), a long poll that answers as soon as the task has ended, or after N seconds.",
        tags: ["tasks"],
        params: TaskParams,
        querystring: GetTaskQuery,
        response: { 200: TaskViewSchema, ...errors(400, 401, 404) },
      },
    },
    async (request, reply) => {
      const waitMs = (request.query.waitSeconds ?? 0) * 1000;
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
    },
  );

  app.get(
    "/v1/tasks",
    {
      schema: {
        summary: "List tasks",
        description:
          "The caller's tasks, newest first, a page at a time. An admin key lists one tenant's (?tenant=) or every tenant's, merged.",
        tags: ["tasks"],
        querystring: ListQuery,
        response: { 200: TaskListSchema, ...errors(400, 401, 404) },
      },
    },
    async (request) => {
      const scope = ctx.scopeOf(request);
      const { cursor, status, label } = request.query;
      const limit = request.query.limit ?? 50;
      const list = (tenant: string) =>
        services.store.list(tenant, { limit, cursor: cursor ?? null, status, label, fieldMaxBytes: LIST_FIELD_MAX_BYTES });
      const page = scope !== null ? await list(scope) : mergePages(await Promise.all(ctx.tenants().map(list)), indexMember, limit);
      return {
        tasks: page.records.map(toListView),
        nextCursor: page.nextCursor ? Buffer.from(page.nextCursor).toString("base64url") : null,
      };
    },
  );

  app.delete(
    "/v1/tasks/:id",
    {
      schema: {
        summary: "Delete a task",
        description: "Cancels it if needed, then removes its workspace, archive, logs and record.",
        tags: ["tasks"],
        params: TaskParams,
        response: { 204: z.null().describe("Deleted; no body"), ...errors(401, 404, 409) },
      },
    },
    // An admin key cancels and deletes any tenant's task, as that tenant would.
    async (request, reply) => {
      const found = await ctx.findTask(request);
      await deleteTask(deps, services, found.tenant, found.id);
      return reply.code(204).send(null);
    },
  );

  app.post(
    "/v1/tasks/:id/cancel",
    {
      schema: {
        summary: "Cancel a task",
        description: "A queued task never starts; a running one is stopped (SIGTERM, then SIGKILL) and ends canceled.",
        tags: ["tasks"],
        params: TaskParams,
        response: { 202: TaskViewSchema, ...errors(401, 404, 409) },
      },
    },
    async (request, reply) => {
      const found = await ctx.findTask(request);
      const record = await services.queue.cancel(found.tenant, found.id);
      return reply.code(202).send(toView(record));
    },
  );
}
