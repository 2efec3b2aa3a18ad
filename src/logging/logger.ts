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
