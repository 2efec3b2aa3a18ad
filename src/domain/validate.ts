// Validation of `POST /v1/tasks` bodies: one clear message naming the field, and nothing queued on failure.
import { createHash } from "node:crypto";
import { z } from "zod";
import { imageAllowed, webhookUrlProblem, type Config } from "../config/config.js";
import type { SubmitTaskRequest } from "../contract/types.js";
import { BerthError } from "../errors.js";
import { CACHE_NAME, MAX_CACHES_PER_TASK } from "./caches.js";
import { engineRequestBytes, execBytes, MAX_ARG_BYTES, MAX_ENGINE_REQUEST_BYTES, MAX_EXEC_BYTES } from "./command.js";
import { ENGINE_MIN, RESERVED_ENV, TASK_ID_PATTERN, toNanoCpus, type TaskSpec } from "./task.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_COMMAND_STRINGS = 256;
/** A lone UTF-16 surrogate: not Unicode, so it cannot be UTF-8 encoded for the kernel or URL-encoded for the engine. */
const LONE_SURROGATE = /\p{Cs}/u;
const LABEL_KEY = /^[A-Za-z0-9_./-]{1,63}$/;

function validFilePath(p: string): boolean {
  if (p.length === 0 || p.length > 1024 || p.startsWith("/") || p.includes("\\") || p.includes("\0")) return false;
  const parts = p.split("/");
  return parts.every((s) => s !== "" && s !== "." && s !== ".." && Buffer.byteLength(s) <= 255);
}

/** The body's shape (the configured maxima are checked by {@link validateSubmit}); also the route's schema. */
export const SubmitBody = z.strictObject({
  command: z
    .array(
      z
        .string()
        .refine((v) => !v.includes("\0"), "arguments must not contain NUL")
        .refine((v) => !LONE_SURROGATE.test(v), "arguments must be valid Unicode (no lone surrogates)"),
      "must be an array of strings",
    )
    .min(1, "must have at least 1 string")
    .max(MAX_COMMAND_STRINGS, `must have at most ${MAX_COMMAND_STRINGS} strings`),
  image: z.string().min(1).max(255).optional(),
  env: z
    .record(
      z.string().regex(ENV_NAME, "env names must match [A-Za-z_][A-Za-z0-9_]*"),
      z
        .string()
        .refine((v) => !v.includes("\0"), "env values must not contain NUL")
        .refine((v) => !LONE_SURROGATE.test(v), "env values must be valid Unicode (no lone surrogates)"),
    )
    .optional(),
  files: z
    .record(z.string().refine(validFilePath, "file paths must be relative, without '..', '.', empty parts or backslashes"), z.string())
    .optional(),
  fromTask: z.string().regex(TASK_ID_PATTERN, "must be a task id").optional(),
  timeoutSeconds: z.number().int("must be a whole number").min(1, "must be at least 1").optional(),
  limits: z
    .strictObject({
      memoryMb: z.number().int("must be a whole number").min(16, "must be at least 16").optional(),
      cpus: z
        .number()
        .min(ENGINE_MIN.cpus, `must be at least ${ENGINE_MIN.cpus} (the smallest CPU limit the engine accepts)`)
        // 0.01 itself is 1e7 after rounding; anything that rounds below would reach the engine as no limit or an error.
        .refine((c) => toNanoCpus(c) >= ENGINE_MIN.nanoCpus, `must be at least ${ENGINE_MIN.cpus}`)
        .optional(),
      pids: z.number().int("must be a whole number").min(8, "must be at least 8").optional(),
      diskMb: z.number().int("must be a whole number").min(1, "must be at least 1").optional(),
    })
    .optional(),
  network: z.enum(["none", "bridge"], 'must be "none" or "bridge"').optional(),
  ttlSeconds: z.number().int("must be a whole number").min(1, "must be at least 1").optional(),
  labels: z
    .record(
      z.string().regex(LABEL_KEY, "label keys must be 1-63 characters of [A-Za-z0-9_./-]"),
      z.string().max(256, "label values must be at most 256 characters"),
    )
    .refine((l) => Object.keys(l).length <= 32, "at most 32 labels")
    .optional(),
  idempotencyKey: z.string().min(1).max(256, "must be at most 256 characters").optional(),
  caches: z
    .array(
      z.string().regex(CACHE_NAME, "cache names must be 1-32 characters of a-z, 0-9, _ and -, starting with a letter or digit"),
      "must be an array of cache names",
    )
    .max(MAX_CACHES_PER_TASK, `at most ${MAX_CACHES_PER_TASK} caches per task`)
    .refine((names) => new Set(names).size === names.length, "names a cache twice")
    .optional(),
  webhook: z
    .strictObject({
      url: z
        .string("must be a URL")
        .refine((u) => webhookUrlProblem(u) === null, { error: (i) => webhookUrlProblem(String(i.input)) ?? "" }),
    })
    .optional(),
});

/** Command and env must fit what the kernel passes to a new process, and the engine's request (see command.ts). */
function checkExecSize(command: readonly string[], env: Readonly<Record<string, string>>): void {
  for (const [i, arg] of command.entries()) {
    const bytes = Buffer.byteLength(arg);
    if (bytes > MAX_ARG_BYTES) throw bad(`command.${i}`, `is ${bytes} bytes; the kernel takes at most ${MAX_ARG_BYTES} bytes per argument`);
  }
  for (const [name, value] of Object.entries(env)) {
    const bytes = Buffer.byteLength(`${name}=${value}`);
    if (bytes > MAX_ARG_BYTES) {
      throw bad(`env.${name}`, `is ${bytes} bytes as NAME=value; the kernel takes at most ${MAX_ARG_BYTES} bytes per variable`);
    }
  }
  const commandBytes = execBytes(command, {});
  const total = commandBytes + execBytes([], env);
  if (total > MAX_EXEC_BYTES) {
    const field = commandBytes > MAX_EXEC_BYTES ? "command" : "env";
    throw bad(
      field,
      `command and env take ${total} bytes as the task's arguments and environment (each string, its NUL and a pointer); at most ${MAX_EXEC_BYTES} fit the kernel's ARG_MAX of 2 MiB with room for what the container adds. Pass large inputs as files instead`,
    );
  }
  const commandEncoded = engineRequestBytes(command, {});
  const encoded = commandEncoded + engineRequestBytes([], env);
  if (encoded > MAX_ENGINE_REQUEST_BYTES) {
    throw bad(
      commandEncoded > MAX_ENGINE_REQUEST_BYTES ? "command" : "env",
      `command and env take ${encoded} bytes URL-encoded in the container engine's create request, which takes at most ${MAX_ENGINE_REQUEST_BYTES}. Pass large inputs as files instead`,
    );
  }
}

/** A file cannot also be a directory of another file ("a" and "a/b"). */
function checkFileTree(files: Readonly<Record<string, string>>): void {
  const paths = new Set(Object.keys(files));
  for (const p of paths) {
    for (let at = p.indexOf("/"); at !== -1; at = p.indexOf("/", at + 1)) {
      const dir = p.slice(0, at);
      if (paths.has(dir)) throw bad("files", `"${dir}" is given as a file and also as the directory of "${p}"; keep one of them`);
    }
  }
}

export interface ValidatedSubmit {
  readonly spec: TaskSpec;
  readonly labels: Record<string, string>;
  readonly idempotencyKey: string | null;
  /** The body's `webhook.url` (well formed; where it resolves to is checked when the task is created). */
  readonly webhookUrl: string | null;
}

const MAX_VARIABLE = {
  memoryMb: "BERTH_MAX_MEMORY_MB",
  cpus: "BERTH_MAX_CPUS",
  pids: "BERTH_MAX_PIDS",
  diskMb: "BERTH_MAX_DISK_MB",
} as const;

const bad = (field: string, problem: string) => new BerthError("invalid_input", `Invalid ${field}: ${problem}.`, { field });
const NOT_AN_OBJECT = 'The request body must be a JSON object with at least a "command" array.';

/**
 * A request that does not match its schema, as the API's 400: the first problem, naming its field
 * ("Invalid limits.cpus: must be positive."), or every unknown field. `part` is what was checked (a body, a query).
 */
export function refusalOf(error: z.ZodError, part: "body" | "querystring" | "params" | "headers" = "body"): BerthError {
  const issue = error.issues[0];
  if (part === "body" && issue?.code === "invalid_type" && issue.path.length === 0) return new BerthError("invalid_input", NOT_AN_OBJECT);
  if (issue?.code === "unrecognized_keys") {
    const [what, whose] = part === "body" ? ["field", "the fields a task takes"] : ["parameter", "the parameters this route takes"];
    return new BerthError(
      "invalid_input",
      `Unknown ${what}${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}; see the API reference for ${whose}.`,
      { fields: issue.keys },
    );
  }
  const field = issue?.path.map(String).join(".") || part;
  // A bad record key (env name, file path, label key) carries the rule in a nested issue.
  const nested = issue?.code === "invalid_key" ? issue.issues[0]?.message : undefined;
  return bad(field, nested ?? issue?.message ?? "is not valid");
}

/**
 * What is refused before the schema looks at the body: anything but an object, and a command array longer than any
 * task may have (before the schema looks at every element of a huge array). The route runs it before validation.
 */
export function precheckSubmit(body: unknown): void {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new BerthError("invalid_input", NOT_AN_OBJECT);
  const rawCommand = (body as { command?: unknown }).command;
  if (Array.isArray(rawCommand) && rawCommand.length > MAX_COMMAND_STRINGS) {
    throw bad("command", `must have at most ${MAX_COMMAND_STRINGS} strings`);
  }
}

/** Checks a submit body against the schema and the configured maxima. Throws BerthError("invalid_input"). */
export function validateSubmit(body: unknown, config: Config, idempotencyHeader?: string): ValidatedSubmit {
  precheckSubmit(body);
  const parsed = SubmitBody.safeParse(body);
  if (!parsed.success) throw refusalOf(parsed.error);
  const b = parsed.data as SubmitTaskRequest;
  const reserved = Object.keys(b.env ?? {}).find((name) => RESERVED_ENV.includes(name));
  if (reserved) throw bad(`env.${reserved}`, `${reserved} is set by berth in every task (${RESERVED_ENV.join(", ")}); leave it out`);
  checkExecSize(b.command, b.env ?? {});
  checkFileTree(b.files ?? {});
  const image = b.image ?? config.images.defaultImage;
  if (!imageAllowed(image, config.images.allowed)) {
    throw bad("image", `"${image}" is not in BERTH_ALLOWED_IMAGES (${config.images.allowed.join(", ")})`);
  }
  const timeoutSeconds = b.timeoutSeconds ?? config.timeouts.defaultSeconds;
  if (timeoutSeconds > config.timeouts.maxSeconds) {
    throw bad("timeoutSeconds", `must be at most ${config.timeouts.maxSeconds} (BERTH_MAX_TASK_TIMEOUT_SECONDS), got ${timeoutSeconds}`);
  }
  const ttlSeconds = b.ttlSeconds ?? config.retention.defaultSeconds;
  if (ttlSeconds > config.retention.maxSeconds) {
    throw bad("ttlSeconds", `must be at most ${config.retention.maxSeconds} (BERTH_MAX_RETENTION_SECONDS), got ${ttlSeconds}`);
  }
  const { defaults, max } = config.limits;
  const limits = {
    memoryMb: b.limits?.memoryMb ?? defaults.memoryMb,
    cpus: b.limits?.cpus ?? defaults.cpus,
    pids: b.limits?.pids ?? defaults.pids,
    diskMb: b.limits?.diskMb ?? defaults.diskMb,
  };
  for (const k of ["memoryMb", "cpus", "pids", "diskMb"] as const) {
    if (limits[k] > max[k]) throw bad(`limits.${k}`, `must be at most ${max[k]} (${MAX_VARIABLE[k]}), got ${limits[k]}`);
  }
  const network = b.network ?? "none";
  if (network === "bridge" && !config.worker.allowNetwork) {
    throw bad("network", '"bridge" is not allowed on this server (BERTH_ALLOW_NETWORK=false); use "none"');
  }
  const headerKey = idempotencyHeader?.trim() || undefined;
  if (headerKey && b.idempotencyKey && headerKey !== b.idempotencyKey) {
    throw bad("idempotencyKey", "differs from the Idempotency-Key header; send one or make them equal");
  }
  if (headerKey && headerKey.length > 256) throw bad("Idempotency-Key", "must be at most 256 characters");
  return {
    spec: {
      command: b.command,
      image,
      env: b.env ?? {},
      files: b.files ?? {},
      fromTask: b.fromTask ?? null,
      timeoutSeconds,
      limits,
      network,
      ttlSeconds,
      ...(b.caches && b.caches.length > 0 ? { caches: b.caches } : {}),
    },
    labels: b.labels ?? {},
    idempotencyKey: headerKey ?? b.idempotencyKey ?? null,
    webhookUrl: b.webhook?.url ?? null,
  };
}

/**
 * What a submit asks for, as a hash: the validated request (defaults filled in) with its keys in a fixed order.
 * Two submits under one idempotency key must have the same fingerprint.
 */
export function requestFingerprint(input: Pick<ValidatedSubmit, "spec" | "labels">): string {
  return createHash("sha256")
    .update(canonicalJson({ spec: input.spec, labels: input.labels }))
    .digest("hex");
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}
