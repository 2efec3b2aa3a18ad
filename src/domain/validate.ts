// Validation of `POST /v1/tasks` bodies: one clear message naming the field, and nothing queued on failure.
import { z } from "zod";
import { imageAllowed, type Config } from "../config/config.js";
import type { SubmitTaskRequest } from "../contract/types.js";
import { BerthError } from "../errors.js";
import { ENGINE_MIN, TASK_ID_PATTERN, toNanoCpus, type TaskSpec } from "./task.js";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9_./-]{1,63}$/;

function validFilePath(p: string): boolean {
  if (p.length === 0 || p.length > 1024 || p.startsWith("/") || p.includes("\\") || p.includes("\0")) return false;
  const parts = p.split("/");
  return parts.every((s) => s !== "" && s !== "." && s !== ".." && Buffer.byteLength(s) <= 255);
}

const Body = z.strictObject({
  command: z
    .array(z.string().max(131_072, "each argument must be at most 131072 characters"), "must be an array of strings")
    .min(1, "must have at least 1 string")
    .max(256, "must have at most 256 strings"),
  image: z.string().min(1).max(255).optional(),
  env: z
    .record(
      z.string().regex(ENV_NAME, "env names must match [A-Za-z_][A-Za-z0-9_]*"),
      z
        .string()
        .max(131_072)
        .refine((v) => !v.includes("\0"), "env values must not contain NUL"),
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
});

export interface ValidatedSubmit {
  readonly spec: TaskSpec;
  readonly labels: Record<string, string>;
  readonly idempotencyKey: string | null;
}

const MAX_VARIABLE = {
  memoryMb: "BERTH_MAX_MEMORY_MB",
  cpus: "BERTH_MAX_CPUS",
  pids: "BERTH_MAX_PIDS",
  diskMb: "BERTH_MAX_DISK_MB",
} as const;

const bad = (field: string, problem: string) => new BerthError("invalid_input", `Invalid ${field}: ${problem}.`, { field });

/** Checks a submit body against the schema and the configured maxima. Throws BerthError("invalid_input"). */
export function validateSubmit(body: unknown, config: Config, idempotencyHeader?: string): ValidatedSubmit {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BerthError("invalid_input", 'The request body must be a JSON object with at least a "command" array.');
  }
  const parsed = Body.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue?.code === "unrecognized_keys") {
      throw new BerthError(
        "invalid_input",
        `Unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => JSON.stringify(k)).join(", ")}; see the API reference for the fields a task takes.`,
        { fields: issue.keys },
      );
    }
    const field = issue?.path.map(String).join(".") || "body";
    // A bad record key (env name, file path, label key) carries the rule in a nested issue.
    const nested = issue?.code === "invalid_key" ? issue.issues[0]?.message : undefined;
    throw bad(field, nested ?? issue?.message ?? "is not valid");
  }
  const b = parsed.data as SubmitTaskRequest;
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
    },
    labels: b.labels ?? {},
    idempotencyKey: headerKey ?? b.idempotencyKey ?? null,
  };
}
