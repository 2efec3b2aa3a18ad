// One root logger, built in main.ts and handed down; no module-level loggers.
import { pino, type Logger } from "pino";

export type Role = "serve" | "api" | "worker" | "cli";

/** How log lines look: JSON (for log shippers), readable lines (pino-pretty), or readable only on a terminal. */
export type LogFormat = "json" | "pretty" | "auto";

/**
 * The root logger; `destination` defaults to stdout (tests pass a stream to inspect what is logged). On stdout,
 * `pretty` (or `auto` on a terminal) writes readable lines through pino's pretty transport, in a worker thread.
 */
export function createRootLogger(opts: { level: string; role: Role; format?: LogFormat }, destination?: NodeJS.WritableStream): Logger {
  const options = {
    level: opts.level,
    base: { service: "berth", role: opts.role, pid: process.pid },
    // A task's env and the caller's key are secrets: they never reach a log line.
    redact: {
      paths: ["env", "*.env", "apiKey", "req.headers.authorization", "headers.authorization", "files", "*.files"],
      censor: "[redacted]",
    },
    serializers: { err: pino.stdSerializers.err },
  };
  if (destination) return pino(options, destination);
  const pretty = opts.format === "pretty" || (opts.format === "auto" && process.stdout.isTTY === true);
  if (!pretty) return pino(options);
  return pino(
    options,
    pino.transport({
      target: "pino-pretty",
      options: { colorize: true, singleLine: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname,service" },
    }),
  );
}

export interface TaskLogContext {
  readonly taskId: string;
  readonly tenant: string;
  readonly workspace: string;
  readonly attempt?: number;
}

/** Every line about one task carries these fields, so `jq 'select(.taskId=="…")'` tells its whole story. */
export const taskLogger = (parent: Logger, ctx: TaskLogContext): Logger =>
  parent.child({ taskId: ctx.taskId, tenant: ctx.tenant, workspace: ctx.workspace, attempt: ctx.attempt });

/** While a dependency stays down, its errors repeat on every retry: at most one line per message per interval. */
const THROTTLE_INTERVAL_MS = 30_000;
/** Distinct messages remembered at once; a flood of different messages is still bounded. */
const THROTTLE_MAX_KEYS = 64;

export interface ThrottledErrorLog {
  /** Logs the first error of a kind at once, then at most one line per interval saying how many were left out. */
  (err: unknown): void;
  /** The dependency answered again: the next error is logged at once. */
  reset(): void;
}

/**
 * An error logger with backoff, for event sources that fire on every retry (a BullMQ worker or queue whose Redis
 * is down emits an error per reconnection attempt, several a second). Errors of the same message share one budget.
 */
export function throttledErrorLog(
  logger: Logger,
  msg: string,
  fields: Record<string, unknown> = {},
  intervalMs = THROTTLE_INTERVAL_MS,
): ThrottledErrorLog {
  const seen = new Map<string, { at: number; suppressed: number }>();
  const log = ((err: unknown) => {
    const key = (err instanceof Error ? err.message : String(err)).slice(0, 200);
    const now = Date.now();
    const entry = seen.get(key);
    if (entry && now - entry.at < intervalMs) {
      entry.suppressed++;
      return;
    }
    if (!entry && seen.size >= THROTTLE_MAX_KEYS) {
      const oldest = seen.keys().next().value;
      if (oldest !== undefined) seen.delete(oldest);
    }
    logger.error({ ...fields, err, suppressed: entry?.suppressed ?? 0 }, msg);
    seen.delete(key);
    seen.set(key, { at: now, suppressed: 0 });
  }) as ThrottledErrorLog;
  log.reset = () => seen.clear();
  return log;
}
