// `GET /v1/usage` (shared/API.md §5): a tenant's queued and running tasks, the bytes it holds, and the CPU time its
// tasks used in a window.
import type { FastifyInstance } from "fastify";
import type { TenantUsage } from "../../contract/types.js";
import { parseSince } from "../../domain/time-window.js";
import type { ApiContext } from "../context.js";
import { errors, UsageQuery, UsageSchema } from "../schemas.js";

const DAY_MS = 86_400_000;
/** The CPU window when `?since=` is not given. */
const DEFAULT_WINDOW_MS = 30 * DAY_MS;

export async function usageRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  // A tenant key reads its own usage; an admin key one tenant's (`?tenant=`), or every tenant's as `{"tenants"}`.
  const schema = {
    summary: "A tenant's usage",
    description:
      "Queued and running tasks, bytes stored (workspaces, archives, caches) and CPU seconds since ?since= (default 30 days). An admin key reads one tenant's (?tenant=) or every tenant's as {tenants: [...]}.",
    tags: ["server"],
    querystring: UsageQuery,
    response: { 200: UsageSchema, ...errors(400, 401, 404) },
  };
  app.get("/v1/usage", { schema }, async (request): Promise<TenantUsage | { tenants: TenantUsage[] }> => {
    const scope = ctx.scopeOf(request);
    const q = request.query as Record<string, string | undefined>;
    if (scope !== null) return tenantUsage(ctx, scope, q.since);
    return { tenants: await Promise.all(ctx.tenants().map((t) => tenantUsage(ctx, t, q.since))) };
  });
}

export async function tenantUsage(ctx: ApiContext, tenant: string, rawSince: string | undefined): Promise<TenantUsage> {
  const { config } = ctx.deps;
  const now = Date.now();
  // CPU records older than the retention are gone: a window starting earlier starts there.
  const earliest = now - config.auditRetentionDays * DAY_MS;
  const since = Math.max(earliest, parseSince(rawSince, now, now - DEFAULT_WINDOW_MS));
  const [counts, stored, cpuSeconds] = await Promise.all([
    ctx.services.store.activeCounts(tenant),
    ctx.services.usage.stored(tenant),
    ctx.services.usage.cpuSecondsSince(tenant, since),
  ]);
  return {
    tenant,
    queued: counts.queued,
    running: counts.running,
    storedBytes: { ...stored, total: stored.workspaces + stored.archives + stored.caches },
    cpuSeconds,
    since: new Date(since).toISOString(),
    limits: {
      maxStoredBytes: config.tenantMaxStoredBytes > 0 ? config.tenantMaxStoredBytes : null,
      maxActiveTasks: config.tenantMaxActive,
    },
  };
}
