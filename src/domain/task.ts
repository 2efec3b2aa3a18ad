// Glossary
// - task: one command a tenant asked berth to run, with its inputs, limits and outcome (the record in Redis).
// - job: the BullMQ job that carries a task id to a worker; the task record, not the job, is the truth.
// - attempt: one run of a task's job by a worker (at-least-once delivery may give more than one).
// - workspace: the host directory task-<unix-ms>-<id> mounted at /workspace in the task's container.
// - archive: the tar.gz of the workspace, written once the container has exited (no process of it is left).
// - tenant: whoever owns an API key; sees only its own tasks.
// - namespace: prefix of every Redis key, queue and container label ("berth"; unique per test file).
import { randomBytes } from "node:crypto";
import type { ChangeSummary, TaskLimits, TaskStatus, TaskUsage, WebhookState } from "../contract/types.js";

export const TASK_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
export const WORKSPACE_PATTERN = /^task-(\d{13})-([A-Za-z0-9_-]{8,64})$/;

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** 20 random characters starting with a letter: never numeric-looking, no `:` (BullMQ job id rules). */
export function newTaskId(): string {
  const bytes = randomBytes(20);
  let id = "";
  for (let i = 0; i < 20; i++) id += ALPHABET[(bytes[i] ?? 0) % (i === 0 ? 26 : 36)];
  return id;
}

export const workspaceName = (createdAtMs: number, id: string): string => `task-${createdAtMs}-${id}`;

/** Where a task's container sees its workspace (also its working directory). */
export const CONTAINER_WORKSPACE = "/workspace";

/** What berth puts in every task's environment: who it is and where its workspace is. */
export const identityEnv = (taskId: string): Record<string, string> => ({ BERTH_TASK_ID: taskId, BERTH_WORKSPACE: CONTAINER_WORKSPACE });

/** Names a task's own `env` may not set: berth's own (refused at submit, and overridden in the container anyway). */
export const RESERVED_ENV: readonly string[] = Object.keys(identityEnv("-"));

/**
 * The smallest limits the Docker engine accepts (checked against Docker 20.10 on cgroup v1): the CFS quota must be
 * at least 1 ms per 100 ms period (0.01 CPU, NanoCpus 1e7), memory at least 6 MB. Zero is not small: the engine
 * reads NanoCpus, Memory or PidsLimit 0 as "no limit", so no value below these may ever reach it.
 */
export const ENGINE_MIN = { cpus: 0.01, nanoCpus: 10_000_000, memoryBytes: 6 * 1024 * 1024, pids: 2 } as const;

/**
 * A spec stored before a limit existed (a task queued across an upgrade) gets the configured default for it,
 * never "no limit".
 */
export const withDefaultLimits = (spec: TaskSpec, defaults: Required<TaskLimits>): TaskSpec => ({
  ...spec,
  limits: { ...defaults, ...spec.limits, diskMb: spec.limits.diskMb ?? defaults.diskMb },
});

/** Bytes a task's workspace may hold: limits.diskMb is in MiB, like memoryMb. */
export const diskLimitBytes = (limits: { readonly diskMb: number }): number => limits.diskMb * 1024 * 1024;

/** NanoCpus the engine gets for `cpus`: rounded as the docker CLI does. */
export const toNanoCpus = (cpus: number): number => Math.round(cpus * 1e9);

/** What a worker needs to run a task; stored with the record, never in logs (env is secret). */
export interface TaskSpec {
  readonly command: string[];
  readonly image: string;
  readonly env: Record<string, string>;
  readonly files: Record<string, string>;
  readonly fromTask: string | null;
  readonly timeoutSeconds: number;
  readonly limits: Required<TaskLimits>;
  readonly network: "none" | "bridge";
  readonly ttlSeconds: number;
  /** The tenant's shared caches mounted at /cache/<name> (absent in specs stored before caches existed). */
  readonly caches?: readonly string[];
}

export interface TaskRecord {
  readonly id: string;
  readonly tenant: string;
  readonly workspace: string;
  readonly status: TaskStatus;
  readonly image: string;
  readonly command: string[];
  /** The start of a long command, shown in lists instead of it (absent when the command is short). */
  readonly commandPreview?: string[] | null;
  readonly labels: Record<string, string>;
  readonly createdAtMs: number;
  readonly startedAtMs: number | null;
  readonly finishedAtMs: number | null;
  readonly expiresAtMs: number | null;
  readonly exitCode: number | null;
  readonly reason: string | null;
  readonly message: string | null;
  readonly timeoutSeconds: number;
  readonly limits: Required<TaskLimits>;
  readonly network: "none" | "bridge";
  readonly ttlSeconds: number;
  readonly archive: { bytes: number; sha256: string } | null;
  readonly archiveSkipped: { path: string; why: string }[];
  /** Bytes of regular files the workspace held when archived (null if it was not archived). */
  readonly workspaceBytes?: number | null;
  /** What the task's processes used, once it has ended (null where it could not be read). */
  readonly usage?: TaskUsage | null;
  readonly outputTruncated: boolean;
  /** What the task changed in its workspace, counted once it is archived; null when not recorded (see archive/changes.ts). */
  readonly changes?: ChangeSummary | null;
  /** The change-only archive (`GET /v1/tasks/:id/archive?changes=only`), once made: its size and sha256. */
  readonly changesArchive?: { bytes: number; sha256: string } | null;
  readonly cancelRequested: boolean;
  /** Host that ran (or runs) the task; its workspace and archive live on that host's disk. */
  readonly host: string | null;
  /** The tenant's shared caches the task mounts (absent in records made before caches existed). */
  readonly caches?: readonly string[];
  /** Where the task's end is POSTed (its own webhook.url or its tenant's default); never shown in the view. */
  readonly webhookUrl?: string | null;
  readonly webhook?: WebhookState | null;
  /** The `submit` queue job that created the task (its id is the task's idempotency key). */
  readonly queueJobId?: string | null;
}
