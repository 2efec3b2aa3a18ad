// What a live view of a tenant's tasks needs beyond §3: `GET /v1/info` (what this server accepts, for the submit
// form) and `GET /v1/events` (the tenant's task changes as Server-Sent Events, for the task list).
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServerInfo } from "../../contract/types.js";
import { BerthError } from "../../errors.js";
import type { ApiContext } from "../context.js";
import { errors, raw, ServerInfoSchema } from "../schemas.js";
import { ALL_TENANTS, type TaskEvents, frame } from "../task-events.js";

/** Event streams one tenant may hold open (tabs, people) and this server in all. */
export const MAX_EVENT_STREAMS_PER_TENANT = 16;
export const MAX_EVENT_STREAMS = 2000;
/** Unsent bytes a stream may hold; a client that cannot keep up is dropped (it reconnects and re-reads). */
const MAX_BUFFERED_BYTES = 256 * 1024;
const HEARTBEAT_MS = 15_000;

export async function liveRoutes(app: FastifyInstance, { ctx, events }: { ctx: ApiContext; events: TaskEvents }): Promise<void> {
  const { config } = ctx.deps;

  const info = {
    summary: "What this server accepts",
    tags: ["server"],
    response: { 200: ServerInfoSchema, ...errors(401) },
  };
  app.get("/v1/info", { schema: info }, async (request): Promise<ServerInfo> => {
    const caller = ctx.auth.callerOf(request);
    return {
      tenant: caller.tenant,
      admin: caller.admin,
      ...(caller.admin ? { tenants: ctx.tenants() } : {}),
      keysRequired: config.apiKeys.size > 0,
      images: { default: config.images.defaultImage, allowed: [...config.images.allowed] },
      timeoutSeconds: { default: config.timeouts.defaultSeconds, max: config.timeouts.maxSeconds },
      ttlSeconds: { default: config.retention.defaultSeconds, max: config.retention.maxSeconds },
      limits: { default: { ...config.limits.defaults }, max: { ...config.limits.max } },
      networkBridgeAllowed: config.worker.allowNetwork,
      maxBodyBytes: config.http.maxBodyBytes,
      maxOutputBytes: config.worker.maxOutputBytes,
      maxActiveTasks: config.tenantMaxActive,
    };
  });

  /**
   * `event: counts` {queued, running} first and whenever they change; `event: task` with the task view of each task
   * created or changed; `event: deleted` {id}; `event: resync` {} when changes may have been missed (re-read then).
   * Events carry no ids and are not replayed: a client re-reads its list whenever it connects.
   */
  const stream = {
    summary: "The caller's task changes, live",
    description:
      "Server-Sent Events: `counts` {queued, running} first and whenever they change, `task` with the view of each task created or changed, `deleted` {id}, and `resync` when changes may have been missed.",
    tags: ["server"],
    querystring: z.looseObject({
      tenant: z.string().optional().describe("Admin keys: only this tenant's changes (without it, every tenant's)"),
    }),
    response: { 200: raw("text/event-stream", "The event stream"), ...errors(400, 401, 404, 429) },
  };
  // An admin key follows one tenant (`?tenant=`) or every tenant.
  app.get("/v1/events", { schema: stream }, async (request, reply) => {
    const tenant = ctx.scopeOf(request) ?? ALL_TENANTS;
    if (events.streamsOf(tenant) >= MAX_EVENT_STREAMS_PER_TENANT || events.size >= MAX_EVENT_STREAMS) {
      throw new BerthError(
        "tenant_over_limit",
        `Too many open event streams (at most ${MAX_EVENT_STREAMS_PER_TENANT} per tenant); close one and retry.`,
        { retryAfterSeconds: 5 },
      );
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
      connection: "keep-alive",
    });
    res.write(": berth task events\n\n");
    let closed = false;
    let stop: (() => void) | undefined;
    const close = () => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      stop?.();
      if (!res.writableEnded) res.end();
    };
    const heartbeat = setInterval(() => {
      if (res.writableLength < MAX_BUFFERED_BYTES) res.write(": heartbeat\n\n");
      else res.destroy();
    }, HEARTBEAT_MS);
    res.on("close", close);
    res.once("close", ctx.deps.metrics.sseOpened("events"));
    const sink = {
      send: (text: string) => {
        if (closed) return true;
        if (res.writableLength >= MAX_BUFFERED_BYTES) return false;
        res.write(text);
        return true;
      },
      close: () => {
        // Dropped for falling behind, or shutdown: anything still unsent goes with the socket.
        if (!closed && res.writableLength >= MAX_BUFFERED_BYTES) res.destroy();
        close();
      },
    };
    try {
      const unwatch = await events.watch(tenant, sink);
      if (closed) unwatch();
      else stop = unwatch;
    } catch (err) {
      request.log.warn({ err }, "task event stream could not start");
      sink.send(frame("resync", {}));
      close();
    }
  });
}
