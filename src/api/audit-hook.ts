// Which requests the audit trail records, and the hook that records them once their response is over (sent,
// cut short, or hijacked for a stream alike): a tenant's submit, cancel, delete, archive download and file read;
// every request of an admin key; every failed authentication.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AuditAction } from "../contract/types.js";
import type { AuditTrail } from "./audit.js";
import type { Authenticator } from "./auth.js";

/** Routes whose every request is audited, whoever makes it. */
const ACTIONS: Readonly<Record<string, AuditAction>> = {
  "POST /v1/tasks": "submit",
  "POST /v1/tasks/:id/cancel": "cancel",
  "DELETE /v1/tasks/:id": "delete",
  "GET /v1/tasks/:id/archive": "archive_download",
  "GET /v1/tasks/:id/files/*": "file_read",
  // Routes that change a tenant's webhook settings map to "webhook_change" here.
};

/** What an admin key's other requests are recorded as. */
const ADMIN_ACTIONS: Readonly<Record<string, AuditAction>> = {
  "GET /v1/tasks": "admin_task_list",
  "GET /v1/tasks/:id": "admin_task_read",
  "GET /v1/tasks/:id/logs": "admin_log_read",
  "GET /v1/tasks/:id/files": "admin_file_list",
  "GET /v1/usage": "admin_usage_read",
  "GET /v1/audit": "admin_audit_read",
  "GET /v1/events": "admin_events",
};

/** The action a request is audited as, or null when it is not audited (a tenant's reads). */
export function auditAction(method: string, route: string, caller: "tenant" | "admin" | "unknown"): AuditAction | null {
  if (caller === "unknown") return "auth_failure";
  const key = `${method} ${route}`;
  const action = ACTIONS[key];
  if (action) return action;
  if (caller === "admin") return ADMIN_ACTIONS[key] ?? "admin_request";
  return null;
}

/** How a request went, from its status. */
export const outcomeOf = (status: number): "ok" | "denied" | "failed" =>
  status < 400 ? "ok" : status === 401 || status === 403 ? "denied" : "failed";

/** Records every audited request of `/v1/*` when its response is over. Register before authentication runs. */
export function registerAuditHook(app: FastifyInstance, auth: Authenticator, audit: AuditTrail): void {
  app.addHook("onRequest", async (request, reply) => {
    const route = request.routeOptions.url;
    if (!route?.startsWith("/v1/")) return;
    reply.raw.once("close", () => {
      const entry = describe(request, route, auth, audit, reply.raw.statusCode);
      if (entry) audit.record(entry);
    });
  });
}

function describe(request: FastifyRequest, route: string, auth: Authenticator, audit: AuditTrail, status: number) {
  const failed = auth.failure(request);
  const caller = auth.authenticated(request);
  // Neither authenticated nor refused: turned away before its key was looked at (shutting down, too many connections).
  if (!failed && !caller) return null;
  const actor = failed || !caller ? "unknown" : caller.admin ? "admin" : "tenant";
  const action = auditAction(request.method, route, actor);
  if (!action) return null;
  const subject = audit.noted(request);
  return {
    time: new Date().toISOString(),
    action,
    tenant: subject?.tenant ?? (caller && !caller.admin ? caller.tenant : null),
    actor,
    keyId: failed ? failed.keyId : (caller?.keyId ?? null),
    remoteAddress: request.ip,
    requestId: String(request.id),
    taskId: subject?.taskId ?? null,
    outcome: outcomeOf(status),
    status,
    method: request.method,
    route,
  } as const;
}
