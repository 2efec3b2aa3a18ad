// The HTTP API (shared/API.md §3) as a Fastify instance; main.ts listens, tests use inject or listen on port 0.
import { createHash } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { BerthError, taskNotFound } from "../errors.js";
import { LiveHub } from "../logs/live-hub.js";
import { Authenticator } from "./auth.js";
import { type ApiContext, taskIdParam } from "./context.js";
import { registerErrorHandler } from "./error-handler.js";
import { artifactRoutes } from "./routes/artifacts.js";
import { dashboardRoutes } from "./routes/dashboard.js";
import { fileRoutes } from "./routes/files.js";
import { healthRoutes } from "./routes/health.js";
import { liveRoutes } from "./routes/live.js";
import { taskRoutes } from "./routes/tasks.js";
import { streamEvents, wantsEventStream } from "./sse.js";
import { TaskEvents } from "./task-events.js";
import { TaskWaiter } from "./task-waiter.js";

export interface ServerOptions {
  /** Whether /readyz checks Docker (an API-only process may not talk to an engine). Default true. */
  readonly checkDocker?: boolean;
  /** The long-poll waiter to use (closed with the server). Default: one on the configured Redis, with its defaults. */
  readonly waiter?: TaskWaiter;
}

export async function buildServer(deps: Deps, services: Services, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: deps.config.http.maxBodyBytes,
    routerOptions: { maxParamLength: 2048 },
    requestTimeout: 0,
  });
  const auth = new Authenticator(deps.config.apiKeys);
  const hub = new LiveHub(services.logs);
  // Output a worker in this process appends reaches this server's followers without a Redis read.
  const unlisten = services.logs.addLiveListener(hub);
  const waiter = opts.waiter ?? new TaskWaiter(deps.config.redisUrl, services.keys.finishedChannel, deps.logger);
  const ctx: ApiContext = {
    deps,
    services,
    auth,
    waiter,
    checkDocker: opts.checkDocker ?? true,
    async findTask(request) {
      const tenant = auth.tenantOf(request);
      const id = taskIdParam(request);
      const record = await services.store.getForTenant(tenant, id);
      if (!record) throw taskNotFound(id);
      return record;
    },
    wantsEventStream,
    streamEvents: (request, reply, record) => streamEvents(request, reply, record, { logs: services.logs, store: services.store, hub }),
  };
  registerErrorHandler(app);
  if (deps.config.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: deps.config.rateLimitPerMinute,
      timeWindow: 60_000,
      // Per key (tenant), so one tenant's burst never slows another; keys are hashed, never kept in memory as is.
      keyGenerator: (request) => {
        const auth = request.headers.authorization;
        return auth ? `key:${createHash("sha256").update(auth).digest("hex")}` : `ip:${request.ip}`;
      },
      allowList: (request) => request.url === "/healthz" || request.url === "/readyz",
      errorResponseBuilder: (_request, ctx) =>
        new BerthError("rate_limited", `Too many requests from this key (at most ${ctx.max} a minute); retry after ${ctx.after}.`, {
          retryAfterSeconds: Math.max(1, Math.ceil(ctx.ttl / 1000)),
        }),
    });
  }
  await app.register(healthRoutes, { ctx });
  await app.register(taskRoutes, { ctx });
  await app.register(artifactRoutes, { ctx });
  await app.register(fileRoutes, { ctx });
  const events = new TaskEvents(deps.config.redisUrl, services.keys.changesChannel, services.store, deps.logger);
  await app.register(liveRoutes, { ctx, events });
  await app.register(dashboardRoutes);
  // Open long polls answer at once when shutdown begins, so they never hold it up.
  app.addHook("preClose", async () => {
    waiter.release();
    events.release();
  });
  app.addHook("onClose", async () => {
    unlisten();
    await Promise.all([waiter.close(), events.close()]);
  });
  return app;
}
