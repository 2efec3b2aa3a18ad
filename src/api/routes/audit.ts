// `GET /v1/audit?since=&limit=&cursor=` (shared/API.md §5): the audit trail, newest first. A tenant key reads its
// own tenant's entries; an admin key one tenant's (`?tenant=`) or all, with the entries about no tenant (failed
// authentications, admins' views across tenants).
import type { FastifyInstance } from "fastify";
import type { AuditPage } from "../../contract/types.js";
import { parseSince } from "../../domain/time-window.js";
import { invalidInput } from "../../errors.js";
import { AuditStore, MAX_PAGE } from "../../store/audit-store.js";
import type { ApiContext } from "../context.js";
import { AuditPageSchema, AuditQuery, errors } from "../schemas.js";

const DEFAULT_LIMIT = 100;
const CURSOR = /^\d{1,15}-\d{1,10}$/;

export async function auditRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const store = new AuditStore(ctx.deps.redis, ctx.services.keys);

  const schema = {
    summary: "The audit trail",
    description:
      "Who did what (submit, cancel, delete, archive download, file read, failed authentication, admin requests), newest first. A tenant key reads its own tenant's entries; an admin key one tenant's (?tenant=) or all.",
    tags: ["server"],
    querystring: AuditQuery,
    response: { 200: AuditPageSchema, ...errors(400, 401, 404) },
  };
  app.get("/v1/audit", { schema }, async (request): Promise<AuditPage> => {
    const scope = ctx.scopeOf(request);
    const q = request.query as Record<string, string | undefined>;
    const now = Date.now();
    const sinceMs = parseSince(q.since, now, now - ctx.deps.config.auditRetentionDays * 86_400_000);
    const limit = q.limit === undefined ? DEFAULT_LIMIT : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) {
      throw invalidInput(`Invalid limit: must be a whole number from 1 to ${MAX_PAGE}.`, { field: "limit" });
    }
    if (q.cursor !== undefined && !CURSOR.test(q.cursor)) {
      throw invalidInput("Invalid cursor: pass back nextCursor from the previous page unchanged.", { field: "cursor" });
    }
    const streams: (string | null)[] = scope !== null ? [scope] : [...new Set([...ctx.tenants(), ...(await store.tenants())]), null];
    const entries = await store.read(streams, { sinceMs, before: q.cursor ?? null, limit });
    return { entries, nextCursor: entries.length === limit ? (entries[entries.length - 1]?.id ?? null) : null };
  });
}
