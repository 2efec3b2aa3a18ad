// The HTTP API (shared/API.md §3) as a Fastify instance; main.ts listens, tests use inject or listen on port 0.
//
// What one client can take from the others is bounded here (SECURITY.md "Limits on callers"): connections per
// address and in all, time to send a request, body size and JSON shape, requests per tenant (counted after
// authentication) and failed authentications per address, open log streams per tenant and in all, and log reads
// (their own Redis connection, a few at a time).
import { randomUUID } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from "fastify";
import type { Deps } from "../app/deps.js";
import type { Services } from "../app/services.js";
import { BerthError, taskNotFound } from "../errors.js";
import { LiveHub } from "../logs/live-hub.js";
import { LogReader, type LogReadStats } from "../logs/log-reader.js";
import { LogStore } from "../logs/log-store.js";
import { closeConnection, connectRedis } from "../store/redis.js";
import { AuditStore } from "../store/audit-store.js";
import { AuditTrail } from "./audit.js";
import { registerAuditHook } from "./audit-hook.js";
import { Authenticator } from "./auth.js";
import { ChangeReads } from "./change-reads.js";
import { addressKey } from "./client-address.js";
import { ConnectionGate } from "./connection-gate.js";
import { type ApiContext, scopeOf, taskIdParam } from "./context.js";
import { onClientError, onFrameworkError, registerErrorHandler } from "./error-handler.js";
import { registerJsonParser } from "./json-body.js";
import { LogStreamSlots } from "./log-streams.js";
import { artifactRoutes } from "./routes/artifacts.js";
import { dashboardRoutes } from "./routes/dashboard.js";
import { changeRoutes } from "./routes/changes.js";
import { fileRoutes } from "./routes/files.js";
import { healthRoutes } from "./routes/health.js";
import { liveRoutes } from "./routes/live.js";
import { OPENAPI_PATH, openApiRoutes, registerSchemas } from "./openapi.js";
import { peerRoutes } from "./routes/peer.js";
import { metricsRoutes } from "./routes/metrics.js";
import { taskRoutes } from "./routes/tasks.js";
import { auditRoutes } from "./routes/audit.js";
import { usageRoutes } from "./routes/usage.js";
import { streamRaw } from "./raw-follow.js";
import { streamEvents, wantsEventStream } from "./sse.js";
import { TaskEvents } from "./task-events.js";
import { TaskWaiter } from "./task-waiter.js";

export interface ServerOptions {
  /** Whether /readyz checks Docker (an API-only process may not talk to an engine). Default true. */
  readonly checkDocker?: boolean;
  /** The long-poll waiter to use (closed with the server). Default: one on the configured Redis, with its defaults. */
  readonly waiter?: TaskWaiter;
  /** Also answer other hosts' API processes for this host's workspaces (an all-in-one server with BERTH_ADVERTISE_URL). */
  readonly peer?: boolean;
}

/** Body limit of every route but the submit (which takes BERTH_MAX_BODY_BYTES for its `files`). */
export const SMALL_BODY_BYTES = 16 * 1024;
/** Log reads running at once, and entries per read (entries hold at most 64 KiB: ≤ 8 MiB in flight in all). */
export const LOG_READS_AT_ONCE = 4;
const LOG_READ_MAX_ENTRIES = 32;

/** Internal counters, for diagnostics and tests (not part of the HTTP API). */
export interface ServerCounters {
  logReads(): LogReadStats;
  logStreams(tenant?: string): number;
  connections(address?: string): number;
}

declare module "fastify" {
  interface FastifyInstance {
    readonly berthCounters: ServerCounters;
  }
}

const isHealthCheck = (request: FastifyRequest) => request.url === "/healthz" || request.url === "/readyz";

export async function buildServer(deps: Deps, services: Services, opts: ServerOptions = {}): Promise<FastifyInstance> {
  const { http } = deps.config;
  const requestTimeoutMs = http.requestTimeoutSeconds * 1000;
  let closing = false;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: SMALL_BODY_BYTES,
    routerOptions: { maxParamLength: 2048 },
    // The whole request (headers and body) must arrive in time; responses (SSE, long polls) are not limited.
    requestTimeout: requestTimeoutMs,
    http: { requestTimeout: requestTimeoutMs, headersTimeout: requestTimeoutMs, connectionsCheckingInterval: 1000 },
    return503OnClosing: false,
    // Unique across restarts and processes: audit entries and error messages quote it.
    genReqId: () => randomUUID(),
    frameworkErrors: onFrameworkError,
    clientErrorHandler: (err, socket) => onClientError(err, socket, http.requestTimeoutSeconds),
  });
  const gate = new ConnectionGate(http.maxConnections, http.maxConnectionsPerAddress);
  gate.attach(app.server);
  const auth = new Authenticator(deps.config.apiKeys, deps.config.authFailuresPerMinute, deps.config.adminKeys);
  const audit = new AuditTrail(new AuditStore(deps.redis, services.keys), deps.logger, deps.config.auditRetentionDays);
  const tenants = [...new Set(deps.config.apiKeys.values())].sort();
  // Log reads for clients never queue behind (or in front of) other requests' Redis commands.
  const logRedis = await connectRedis(deps.config.redisUrl, deps.logger, "log reads");
  const logReader = new LogReader(new LogStore(logRedis, services.keys), LOG_READS_AT_ONCE, LOG_READ_MAX_ENTRIES);
  const logStreams = new LogStreamSlots(deps.config.logStreams.max, deps.config.logStreams.perTenant);
  const hub = new LiveHub(logReader);
  // Output a worker in this process appends reaches this server's followers without a Redis read.
  const unlisten = services.logs.addLiveListener(hub);
  const waiter = opts.waiter ?? new TaskWaiter(deps.config.redisUrl, services.keys.finishedChannel, deps.logger);
  const ctx: ApiContext = {
    deps,
    services,
    auth,
    waiter,
    logReader,
    logStreams,
    changeReads: new ChangeReads(),
    checkDocker: opts.checkDocker ?? true,
    audit,
    async findTask(request) {
      const caller = auth.callerOf(request);
      const id = taskIdParam(request);
      const record = caller.admin ? await services.store.get(id) : await services.store.getForTenant(caller.tenant, id);
      if (!record) throw taskNotFound(id);
      audit.note(request, { tenant: record.tenant, taskId: record.id });
      return record;
    },
    scopeOf(request) {
      const scope = scopeOf(request, auth.callerOf(request));
      audit.note(request, { tenant: scope, taskId: null });
      return scope;
    },
    tenants: () => [...tenants],
    wantsEventStream,
    streamEvents: (request, reply, record) => {
      reply.raw.once("close", deps.metrics.sseOpened("logs"));
      return streamEvents(request, reply, record, { reader: logReader, store: services.store, hub, slots: logStreams });
    },
    streamRaw: (request, reply, record, query) =>
      streamRaw(request, reply, record, query, { reader: logReader, store: services.store, hub, slots: logStreams }),
  };
  app.decorate("berthCounters", {
    logReads: () => logReader.stats(),
    logStreams: (tenant?: string) => logStreams.open(tenant),
    connections: (address?: string) => gate.open(address),
  } satisfies ServerCounters);
  registerErrorHandler(app, http.maxBodyBytes);
  registerJsonParser(app);
  await registerSchemas(app);

  // Every audited request is recorded when its response is over, however it ends.
  registerAuditHook(app, auth, audit);
  // Before anything else: refused connections, shutdown, then the caller's identity (so rate limits count per
  // tenant however the key is spelled, and an unknown caller's body is never read).
  app.addHook("onRequest", async (request, reply) => {
    void reply.header("x-request-id", request.id);
    const refused = gate.refusal(request.raw.socket);
    if (refused) throw refused;
    if (closing) {
      throw new BerthError("shutting_down", "This server is shutting down; retry in a moment.", {
        retryAfterSeconds: 5,
        closeConnection: true,
      });
    }
    // The API's description is public: clients and generators read it before they have a key.
    if (request.routeOptions.url?.startsWith("/v1/") && request.routeOptions.url !== OPENAPI_PATH) auth.callerOf(request);
  });
  if (deps.config.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: deps.config.rateLimitPerMinute,
      timeWindow: 60_000,
      // Per tenant, so one tenant's burst never slows another; callers without a tenant count per address.
      keyGenerator: (request) => {
        const caller = auth.authenticated(request);
        if (caller === undefined) return `address:${addressKey(request.ip)}`;
        return caller.admin ? `admin:${caller.keyId}` : `tenant:${caller.tenant}`;
      },
      allowList: isHealthCheck,
      errorResponseBuilder: (_request, ctx) =>
        new BerthError("rate_limited", `Too many requests (at most ${ctx.max} a minute per tenant); retry after ${ctx.after}.`, {
          retryAfterSeconds: Math.max(1, Math.ceil(ctx.ttl / 1000)),
        }),
    });
  }
  await app.register(healthRoutes, { ctx });
  await app.register(metricsRoutes, { deps });
  await app.register(taskRoutes, { ctx });
  await app.register(artifactRoutes, { ctx });
  await app.register(fileRoutes, { ctx });
  await app.register(changeRoutes, { ctx });
  await app.register(usageRoutes, { ctx });
  await app.register(auditRoutes, { ctx });
  const events = new TaskEvents(deps.config.redisUrl, services.keys.changesChannel, services.store, deps.logger, () => tenants);
  await app.register(liveRoutes, { ctx, events });
  await app.register(dashboardRoutes);
  if (opts.peer) await app.register(peerRoutes, { deps });
  await app.register(openApiRoutes);
  // Open long polls answer at once when shutdown begins, so they never hold it up.
  app.addHook("preClose", async () => {
    closing = true;
    waiter.release();
    events.release();
  });
  app.addHook("onClose", async () => {
    unlisten();
    await Promise.all([waiter.close(), events.close(), closeConnection(logRedis), audit.close()]);
  });
  return app;
}
