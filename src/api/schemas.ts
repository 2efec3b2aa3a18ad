// The JSON shapes of the API as zod schemas: Fastify validates requests and serializes responses with them
// (fastify-type-provider-zod), and the OpenAPI document at /v1/openapi.json is generated from them (openapi.ts).
// Each schema is checked against its wire type in contract/types.ts (`satisfies`), so the three cannot drift apart.
import { z } from "zod";
import {
  type AuditAction,
  type ChangeList,
  type ChangeSummary,
  type AuditEntry,
  type AuditPage,
  MAX_WAIT_SECONDS,
  type ServerInfo,
  TASK_STATUSES,
  type TaskCounts,
  type TaskList,
  type TaskView,
  type TenantUsage,
  WEBHOOK_STATUSES,
} from "../contract/types.js";
import { SubmitBody } from "../domain/validate.js";

/** Registers a schema under a name: it becomes #/components/schemas/<name> in the document. */
const named = <T extends z.ZodType>(name: string, schema: T): T => {
  // Keeps what .describe() registered; adds the id.
  const meta = z.globalRegistry.get(schema);
  if (meta?.id === name) return schema;
  z.globalRegistry.remove(schema);
  z.globalRegistry.add(schema, { ...meta, id: name });
  return schema;
};

const isoTime = z.iso.datetime({ offset: true }).describe("ISO-8601 time");
const Limits = z.object({ memoryMb: z.number(), cpus: z.number(), pids: z.number(), diskMb: z.number() });

export const ErrorBody = named(
  "Error",
  z
    .object({
      error: z.object({
        code: z.string().describe("snake_case: invalid_input, unauthorized, not_found, wrong_state, expired, tenant_over_limit, …"),
        message: z.string().describe("What went wrong and what to do"),
      }),
    })
    // /readyz adds which dependency is down.
    .catchall(z.unknown())
    .describe('An error: {"error": {"code", "message"}}'),
);

export const WebhookState = named(
  "WebhookState",
  z.object({
    status: z.enum(WEBHOOK_STATUSES),
    attempts: z.number().int().min(0),
    lastError: z.string().nullable(),
  }),
);

const ChangeSummarySchema = named(
  "ChangeSummary",
  z.object({
    added: z.number().int(),
    modified: z.number().int(),
    deleted: z.number().int(),
    typeChanged: z.number().int(),
    bytesAdded: z.number().int(),
    bytesRemoved: z.number().int(),
  }) satisfies z.ZodType<ChangeSummary>,
);

const entryType = z.enum(["file", "dir", "symlink", "fifo", "socket", "device"]);

export const ChangeListSchema = named(
  "ChangeList",
  z
    .object({
      changes: z.array(
        z.object({
          path: z.string(),
          change: z.enum(["added", "modified", "deleted", "type_changed"]),
          type: entryType,
          size: z.number().int().nullable(),
          previousSize: z.number().int().nullable(),
          previousType: entryType.optional(),
        }),
      ),
      summary: ChangeSummarySchema,
      nextCursor: z.string().nullable().describe("Pass as ?cursor= for the next page; null on the last"),
    })
    .describe("One page of what a task changed, in path order, and the whole list's summary") satisfies z.ZodType<ChangeList>,
);

export const ChangesQuery = z.looseObject({
  limit: z.string().optional().describe("Changes per page: 1 to 10000, default 1000"),
  cursor: z.string().optional().describe("nextCursor of the previous page"),
});

export const DiffQuery = z.looseObject({
  path: z.string().optional().describe("Only this path's diff"),
});

export const TaskViewSchema = named(
  "Task",
  z
    .object({
      id: z.string().describe("[A-Za-z0-9_-]{8,64}"),
      workspace: z.string().describe("task-<unix-ms>-<id>"),
      status: z.enum(TASK_STATUSES),
      image: z.string(),
      command: z.array(z.string()),
      commandTruncated: z.boolean().describe("True when `command` is only its start (list entries cut long commands)"),
      labels: z.record(z.string(), z.string()),
      createdAt: isoTime,
      startedAt: isoTime.nullable(),
      finishedAt: isoTime.nullable(),
      expiresAt: isoTime.nullable(),
      exitCode: z.number().int().nullable(),
      reason: z.string().nullable().describe("oom_killed, timeout, canceled, image_not_found, output_truncated, internal_error, …"),
      message: z.string().nullable(),
      timeoutSeconds: z.number().int(),
      limits: Limits,
      network: z.enum(["none", "bridge"]),
      archive: z.object({ bytes: z.number().int(), sha256: z.string() }).nullable(),
      archiveSkipped: z.array(z.object({ path: z.string(), why: z.string() })),
      outputTruncated: z.boolean(),
      host: z.string().nullable().describe("The host (its BERTH_NODE_ID) that runs or ran the task; null while it is queued"),
      tenant: z.string().describe("The tenant the task belongs to"),
      caches: z.array(z.string()).describe("The tenant's shared caches it mounts at /cache/<name>"),
      usage: z
        .object({ cpuSeconds: z.number(), peakMemoryBytes: z.number().int().nullable() })
        .nullable()
        .describe("What the task used, once it has ended (null before, and where the server cannot read it)"),
      workspaceBytes: z.number().int().nullable().describe("Bytes of regular files its workspace held when archived"),
      webhook: WebhookState.nullable(),
      queueJobId: z.string().nullable(),
      changes: ChangeSummarySchema.nullable().describe("Once the task has ended: what it changed, counted"),
      links: z.object({
        self: z.string(),
        logs: z.string(),
        archive: z.string(),
        files: z.string(),
        changes: z.string(),
        diff: z.string(),
      }),
      omitted: z
        .array(z.string())
        .optional()
        .describe("List entries only: fields left out for their size (their values are empty here); GET the task for them"),
    })
    .describe("A task") satisfies z.ZodType<TaskView>,
);

export const TaskListSchema = named(
  "TaskList",
  z
    .object({
      tasks: z.array(TaskViewSchema),
      nextCursor: z.string().nullable().describe("Pass as ?cursor= for the next page; null on the last"),
    })
    .describe("A page of tasks, newest first") satisfies z.ZodType<TaskList>,
);

export const SubmitBodySchema = named("SubmitTask", SubmitBody);

export const FileListSchema = named(
  "FileList",
  z
    .object({
      files: z.array(z.object({ path: z.string(), type: z.enum(["file", "dir", "symlink"]), size: z.number().int() })),
      truncated: z.boolean().describe("True when the listing stopped at its limit"),
    })
    .describe("The workspace's entries"),
);

export const ServerInfoSchema = named(
  "ServerInfo",
  z
    .object({
      tenant: z.string().nullable().describe("The tenant the key names; null for an admin key"),
      admin: z.boolean(),
      tenants: z.array(z.string()).optional().describe("Admin keys: the tenants this server has keys for"),
      keysRequired: z.boolean(),
      images: z.object({ default: z.string(), allowed: z.array(z.string()) }),
      timeoutSeconds: z.object({ default: z.number(), max: z.number() }),
      ttlSeconds: z.object({ default: z.number(), max: z.number() }),
      limits: z.object({ default: Limits, max: Limits }),
      networkBridgeAllowed: z.boolean(),
      maxBodyBytes: z.number(),
      maxOutputBytes: z.number(),
      maxActiveTasks: z.number(),
    })
    .describe("What this server accepts") satisfies z.ZodType<ServerInfo>,
);

const TenantUsageSchema = named(
  "TenantUsage",
  z
    .object({
      tenant: z.string(),
      queued: z.number().int(),
      running: z.number().int(),
      storedBytes: z.object({ workspaces: z.number(), archives: z.number(), caches: z.number(), total: z.number() }),
      cpuSeconds: z.number(),
      since: isoTime,
      limits: z.object({ maxStoredBytes: z.number().nullable(), maxActiveTasks: z.number() }),
    })
    .describe("A tenant's queued and running tasks, stored bytes, and CPU seconds since `since`") satisfies z.ZodType<TenantUsage>,
);

export const UsageSchema = z.union([TenantUsageSchema, z.object({ tenants: z.array(TenantUsageSchema) })]);

const AUDIT_ACTIONS = [
  "submit",
  "cancel",
  "delete",
  "archive_download",
  "file_read",
  "webhook_change",
  "auth_failure",
  "admin_task_list",
  "admin_task_read",
  "admin_log_read",
  "admin_file_list",
  "admin_usage_read",
  "admin_audit_read",
  "admin_events",
  "admin_request",
] as const satisfies readonly AuditAction[];
const AuditEntrySchema = named(
  "AuditEntry",
  z
    .object({
      id: z.string(),
      time: isoTime,
      action: z.enum(AUDIT_ACTIONS),
      tenant: z.string().nullable(),
      actor: z.enum(["tenant", "admin", "unknown"]),
      keyId: z.string().nullable(),
      remoteAddress: z.string(),
      requestId: z.string(),
      taskId: z.string().nullable(),
      outcome: z.enum(["ok", "denied", "failed"]),
      status: z.number().int(),
      method: z.string(),
      route: z.string(),
    })
    .describe("Who did what, from where, to which task, and how it went") satisfies z.ZodType<AuditEntry>,
);

export const AuditPageSchema = named(
  "AuditPage",
  z.object({
    entries: z.array(AuditEntrySchema),
    nextCursor: z.string().nullable().describe("Pass as ?cursor= for older entries; null on the last page"),
  }) satisfies z.ZodType<AuditPage>,
);

/** `?tenant=` of the routes an admin key may point at one tenant (checked by ApiContext.scopeOf). */
const tenantParam = z.string().optional().describe("Admin keys: only this tenant (without it, every tenant)");
const sinceParam = z.string().optional().describe("ISO-8601 time or a duration back from now");

export const UsageQuery = z.looseObject({ tenant: tenantParam, since: sinceParam });
export const AuditQuery = z.looseObject({
  tenant: tenantParam,
  since: sinceParam,
  limit: z.string().optional().describe("A whole number, at most 1000 entries a page"),
  cursor: z.string().optional().describe("nextCursor of the previous page"),
});

export const TaskCountsSchema = z.object({ queued: z.number(), running: z.number() }) satisfies z.ZodType<TaskCounts>;

export const TaskParams = z.object({
  id: z.string().describe("The task's id; an id of another tenant's task answers 404, exactly like an unknown one"),
});

export const FileParams = TaskParams.extend({
  "*": z.string().describe("A path inside the workspace, e.g. dir/out.txt (its / may be sent as %2F)"),
});

/** A query parameter that is a whole number: digits only (so "", "1.5" and "1e3" are refused), within bounds. */
const wholeNumber = (min: number, max: number) => {
  const problem = `must be a whole number from ${min} to ${max}`;
  return z
    .string()
    .regex(/^\d{1,9}$/, problem)
    .transform(Number)
    .pipe(z.number().min(min, problem).max(max, problem));
};

/** A page's cursor: the index member (creation time, id) of the last task of the previous page, in base64url. */
const CURSOR = /^\d{15}\|[A-Za-z0-9_-]{8,64}$/;
const fromCursor = (c: string) => Buffer.from(c, "base64url").toString("utf8");

// Query schemas pass parameters they do not name through untouched (looseObject): a route reading a parameter its
// schema does not declare yet keeps working, though the document will not show it until it is declared here.
export const ListQuery = z.looseObject({
  status: z.enum(TASK_STATUSES, `must be one of ${TASK_STATUSES.join(", ")}`).optional(),
  label: z
    .string()
    .regex(/^[^:]+:/, "use label=key:value")
    .transform((l): [string, string] => [l.slice(0, l.indexOf(":")), l.slice(l.indexOf(":") + 1)])
    .optional()
    .describe("key:value; only tasks with that label"),
  limit: wholeNumber(1, 500).optional().describe("1 to 500, default 50"),
  cursor: z
    .string()
    .refine((c) => CURSOR.test(fromCursor(c)), "pass back nextCursor from the previous page unchanged")
    .transform(fromCursor)
    .optional()
    .describe("nextCursor of the previous page"),
  tenant: z.string().optional().describe("Admin keys: only this tenant's tasks (without it, every tenant's)"),
});

export const GetTaskQuery = z.looseObject({
  waitSeconds: wholeNumber(0, MAX_WAIT_SECONDS)
    .optional()
    .describe(`Long poll: answer as soon as the task has ended, or after this many seconds (at most ${MAX_WAIT_SECONDS})`),
});

export const LogsQuery = z.looseObject({
  after: z.string().optional().describe("Server-Sent Events: resume strictly after this event id (as Last-Event-ID)"),
  // Checked by rawQuery (api/raw-follow.ts), whose messages name the parameter; declared here for the document.
  follow: z
    .string()
    .optional()
    .describe('"true": the bytes as printed, live until the task ends (raw output: text/plain, or Docker\'s framing when asked)'),
  stream: z.string().optional().describe('Raw output: only "stdout" or only "stderr" (without it, both interleaved)'),
  offset: z.string().optional().describe("Raw output: resume after this many bytes of the selected output"),
});

/** The error answers a route can give, with the contract's body. */
export const errors = (...statuses: number[]) => Object.fromEntries(statuses.map((s) => [s, ErrorBody]));

/** A response that is not JSON: its content type and a description, for the document. */
export const raw = (contentType: string, description: string, schema: z.ZodType = z.string()) => ({
  description,
  content: { [contentType]: { schema } },
});
