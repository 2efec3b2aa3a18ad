// Client commands over HTTP: submit, status, logs, download, cancel, list, delete (BERTH_URL, BERTH_API_KEY).
import { readFile } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { InvalidArgumentError, Option, type Command } from "commander";
import { clientEnv, type ClientEnv } from "../../config/client-env.js";
import {
  BerthApiError,
  BerthClient,
  UNREACHABLE,
  isBerthApiError,
  type OutputEnd,
  type SubmitTaskRequest,
  type TaskView,
} from "../../client/index.js";

/** Exit codes of the client commands (besides a followed task's own exit code). */
export const EXIT = { error: 1, usage: 2, timedOut: 124, infrastructure: 125, canceled: 130, unavailable: 69 } as const;

const EXIT_CODES_HELP = `
Exit codes when following (--follow / -f): the task's own exit code, or
  124  the task timed out          130  the task was canceled
  125  the task failed without an exit code (infrastructure: image missing, archive failed, ...)
Exit codes of berth itself:
    1  the server refused (not found, wrong state, ...)     2  usage or validation error (HTTP 400)
   69  the server is unreachable (check BERTH_URL)`;

/** A mistake in the command line found by berth itself (exit 2). */
export class CliUsageError extends Error {
  override readonly name = "CliUsageError";
}

/** The exit code for an error of a client command, or `undefined` if it is not one of theirs. */
export function exitCodeFor(err: unknown): number | undefined {
  if (err instanceof CliUsageError) return EXIT.usage;
  if (!isBerthApiError(err)) return undefined;
  if (err.code === UNREACHABLE) return EXIT.unavailable;
  return err.status === 400 || err.code === "invalid_input" ? EXIT.usage : EXIT.error;
}

/** A client for the server named by `BERTH_URL` (default http://127.0.0.1:8080), as the tenant of `BERTH_API_KEY`. */
export function clientFromEnv(env: ClientEnv = clientEnv()): BerthClient {
  return new BerthClient({ url: env.url, ...(env.apiKey ? { apiKey: env.apiKey } : {}) });
}

interface SubmitOptions {
  image?: string;
  env?: Record<string, string>;
  file?: string[];
  timeout?: number;
  label?: Record<string, string>;
  network?: "none" | "bridge";
  memoryMb?: number;
  cpus?: number;
  pids?: number;
  diskMb?: number;
  ttl?: number;
  idempotencyKey?: string;
  fromTask?: string;
  follow?: boolean;
  json?: boolean;
}

/**
 * A command that talks to the server: usage mistakes exit 2 (commander's default is 1; help still exits 0), and a
 * closed pipe (`berth logs ID | head`) just ends the output, without a stack trace.
 */
export const clientCommand = (program: Command, name: string, description: string): Command =>
  program
    .command(name)
    .description(description)
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT.usage))
    .hook(
      "preAction",
      () => void process.stdout.on("error", (err: NodeJS.ErrnoException) => process.exit(err.code === "EPIPE" ? 0 : EXIT.error)),
    );

/** Client commands (submit, status, logs, download, cancel, list, delete) over HTTP. */
export function registerClientCommands(program: Command): void {
  const command = (name: string, description: string) => clientCommand(program, name, description);

  command("submit", "submit a task and print its id; with --follow, stream its output and exit with its exit code")
    .usage("[options] -- CMD [ARGS...]")
    .argument("<command...>", "the command to run in the task's container (put it after --)")
    .option("--image <image>", "image to run (must be allowed by the server)")
    .option("--env <K=V>", "environment variable (repeatable)", collectPair("--env"))
    .option("--file <LOCAL[:PATH]>", "upload a local UTF-8 text file as PATH in the workspace (default: its basename; repeatable)", collect)
    .option("--timeout <seconds>", "stop the task after this many seconds", parseNumber)
    .option("--label <k=v>", "label the task (repeatable)", collectPair("--label"))
    .addOption(new Option("--network <mode>", "network access").choices(["none", "bridge"]))
    .option("--memory-mb <n>", "memory limit in MiB", parseNumber)
    .option("--cpus <n>", "CPU limit (may be fractional)", parseNumber)
    .option("--pids <n>", "process-count limit", parseNumber)
    .option("--disk-mb <n>", "most the workspace may hold, in MiB (past it the task is stopped)", parseNumber)
    .option("--ttl <seconds>", "keep the finished task's workspace, archive and logs this long", parseNumber)
    .option("--idempotency-key <key>", "return the existing task submitted with this key instead of a new one")
    .option("--from-task <id>", "start from a copy of an earlier task's final workspace")
    .option("-f, --follow", "stream the task's stdout/stderr and exit with its exit code")
    .option("--json", "print the task view as JSON instead of the id (on stderr with --follow)")
    .passThroughOptions()
    .addHelpText("after", EXIT_CODES_HELP)
    .action(
      withHint(async (cmd: string[], o: SubmitOptions) => {
        const client = clientFromEnv();
        const view = await client.submit(
          await buildRequest(cmd, o),
          o.idempotencyKey === undefined ? {} : { idempotencyKey: o.idempotencyKey },
        );
        const shown = o.json ? `${JSON.stringify(view, null, 2)}\n` : o.follow ? `berth: task ${view.id}\n` : `${view.id}\n`;
        (o.follow ? process.stderr : process.stdout).write(shown);
        if (o.follow) process.exitCode = await followTask(client, view.id);
      }),
    );

  command("status", "show a task")
    .argument("<id>")
    .option("--json", "print the task view as JSON")
    .action(
      withHint(async (id: string, o: { json?: boolean }) => {
        const view = await clientFromEnv().get(id);
        process.stdout.write(o.json ? `${JSON.stringify(view, null, 2)}\n` : formatView(view));
      }),
    );

  command("logs", "print a task's output so far; with -f, follow it live and exit with its exit code")
    .argument("<id>")
    .option("-f, --follow", "stream stdout/stderr live until the task ends")
    .addHelpText("after", EXIT_CODES_HELP)
    .action(
      withHint(async (id: string, o: { follow?: boolean }) => {
        const client = clientFromEnv();
        if (o.follow) process.exitCode = await followTask(client, id);
        else process.stdout.write(await client.logs(id));
      }),
    );

  command("download", "download a finished task's workspace archive (sha256 verified)")
    .argument("<id>")
    .option("-o, --output <file>", "where to write it (default: <workspace>.tar.gz; - for stdout)")
    .option("--changes-only", "only what the task added and modified, with .berth-deleted listing what it removed")
    .action(
      withHint(async (id: string, o: { output?: string; changesOnly?: boolean }) => {
        const client = clientFromEnv();
        const onProgress = process.stderr.isTTY ? progressBar() : undefined;
        const only = o.changesOnly ? { changesOnly: true } : {};
        if (o.output === "-") {
          await pipeline(await client.download(id, { stream: true, ...only, ...(onProgress ? { onProgress } : {}) }), process.stdout);
        } else {
          const done = await client.download(id, {
            ...only,
            ...(o.output ? { file: o.output } : {}),
            ...(onProgress ? { onProgress } : {}),
          });
          if (onProgress) process.stderr.write("\n");
          process.stdout.write(`${done.path}\n`);
        }
      }),
    );

  command("cancel", "cancel a queued or running task")
    .argument("<id>")
    .action(
      withHint(async (id: string) => {
        const view = await clientFromEnv().cancel(id);
        process.stdout.write(`${view.id}\n`);
      }),
    );

  command("list", "list tasks, newest first")
    .addOption(
      new Option("--status <status>", "only tasks in this status").choices([
        "queued",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "canceled",
        "expired",
      ]),
    )
    .option("--label <k:v>", "only tasks with this label")
    .option("--tenant <tenant>", "only this tenant's tasks (an admin key; without it, every tenant's)")
    .option("--limit <n>", "show at most this many", parseNumber, 20)
    .option("--json", "print the task views as a JSON array")
    .action(
      withHint(async (o: { status?: TaskView["status"]; label?: string; tenant?: string; limit: number; json?: boolean }) => {
        const { tasks, more } = await listTasks(clientFromEnv(), o);
        if (o.json) process.stdout.write(`${JSON.stringify(tasks, null, 2)}\n`);
        else if (tasks.length === 0) process.stderr.write("berth: no tasks\n");
        else process.stdout.write(formatTable(tasks));
        if (more && !o.json) process.stderr.write(`berth: showing the newest ${tasks.length}; use --limit for more\n`);
      }),
    );

  command("delete", "delete a task with its workspace, archive and logs (canceling it first if needed)")
    .argument("<id>")
    .action(
      withHint(async (id: string) => {
        await clientFromEnv().delete(id);
        process.stdout.write(`${id}\n`);
      }),
    );
}

async function buildRequest(command: string[], o: SubmitOptions): Promise<SubmitTaskRequest> {
  const req: SubmitTaskRequest = { command };
  if (o.image !== undefined) req.image = o.image;
  if (o.env) req.env = o.env;
  if (o.file) req.files = await readUploads(o.file);
  if (o.timeout !== undefined) req.timeoutSeconds = o.timeout;
  if (o.label) req.labels = o.label;
  if (o.network !== undefined) req.network = o.network;
  const limits = {
    ...(o.memoryMb === undefined ? {} : { memoryMb: o.memoryMb }),
    ...(o.cpus === undefined ? {} : { cpus: o.cpus }),
    ...(o.pids === undefined ? {} : { pids: o.pids }),
    ...(o.diskMb === undefined ? {} : { diskMb: o.diskMb }),
  };
  if (Object.keys(limits).length > 0) req.limits = limits;
  if (o.ttl !== undefined) req.ttlSeconds = o.ttl;
  if (o.fromTask !== undefined) req.fromTask = o.fromTask;
  return req;
}

/** `--file LOCAL[:PATH]` → `files[PATH]`, refusing what is not UTF-8 text (the API carries files as strings). */
async function readUploads(specs: readonly string[]): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const spec of specs) {
    const at = spec.indexOf(":");
    const local = at === -1 ? spec : spec.slice(0, at);
    const target = (at === -1 ? "" : spec.slice(at + 1)) || path.basename(local);
    let bytes: Buffer;
    try {
      bytes = await readFile(local);
    } catch (err) {
      throw new CliUsageError(`--file ${local}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`);
    }
    let text: string;
    try {
      if (bytes.includes(0)) throw new Error("NUL byte");
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
    } catch {
      throw new CliUsageError(
        `--file ${local}: not UTF-8 text. Only text files can be uploaded; for binary data, upload it base64-encoded and decode it in the task.`,
      );
    }
    if (target in files) throw new CliUsageError(`--file: two files would be written to "${target}"; name the paths with LOCAL:PATH.`);
    files[target] = text;
  }
  return files;
}

/**
 * Streams a task's raw output (stdout → stdout, stderr → stderr, bytes as printed); returns the exit code to use.
 * berth's own notes (output dropped past the limit, why a task failed) go to stderr at the end.
 */
async function followTask(client: BerthClient, id: string): Promise<number> {
  let end: OutputEnd | undefined;
  const onReconnect = (attempt: number, err: unknown) =>
    process.stderr.write(
      `berth: output stream interrupted (${err instanceof Error ? err.message : String(err)}); resuming (attempt ${attempt})\n`,
    );
  for await (const e of client.followOutput(id, { onReconnect })) {
    if (e.type === "end") end = e;
    else await write(e.stream === "stdout" ? process.stdout : process.stderr, e.data);
  }
  if (!end) return EXIT.error;
  const view = end.task;
  if (view.outputTruncated) process.stderr.write(`berth: task ${id}'s output passed the server's limit; the rest was dropped\n`);
  const code = exitCodeOfEnd(end);
  if (end.status !== "succeeded" && !(end.status === "failed" && code === end.exitCode)) {
    const why = [view.reason, view.message].filter(Boolean).join(": ");
    process.stderr.write(`berth: task ${id} ${end.status}${why ? ` (${why})` : ""}\n`);
  }
  return code;
}

/** A finished task's status → the process exit code (see EXIT_CODES_HELP). */
export function exitCodeOfEnd(end: { status: TaskView["status"]; exitCode: number | null }): number {
  switch (end.status) {
    case "succeeded":
      return 0;
    case "timed_out":
      return EXIT.timedOut;
    case "canceled":
      return EXIT.canceled;
    case "failed":
      return end.exitCode !== null && end.exitCode !== 0 ? end.exitCode : EXIT.infrastructure;
    default:
      return EXIT.error;
  }
}

const write = (out: NodeJS.WriteStream, data: Uint8Array): Promise<void> | void => {
  if (!out.write(data)) return new Promise((resolve) => out.once("drain", () => resolve()));
};

async function listTasks(client: BerthClient, o: { status?: TaskView["status"]; label?: string; tenant?: string; limit: number }) {
  const tasks: TaskView[] = [];
  let cursor: string | undefined;
  do {
    const page = await client.list({
      ...(o.status ? { status: o.status } : {}),
      ...(o.label ? { label: o.label } : {}),
      ...(o.tenant ? { tenant: o.tenant } : {}),
      limit: Math.min(500, Math.max(1, o.limit - tasks.length)),
      ...(cursor ? { cursor } : {}),
    });
    tasks.push(...page.tasks);
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined && tasks.length < o.limit);
  return { tasks: tasks.slice(0, o.limit), more: cursor !== undefined };
}

function formatView(v: TaskView): string {
  const rows: [string, unknown][] = [
    ["id", v.id],
    ["status", v.status],
    ["exit code", v.exitCode],
    ["reason", v.reason],
    ["message", v.message],
    ["image", v.image],
    ["command", v.command.map(quoteArg).join(" ")],
    [
      "labels",
      Object.entries(v.labels)
        .map(([k, x]) => `${k}=${x}`)
        .join(", "),
    ],
    ["created", v.createdAt],
    ["started", v.startedAt],
    ["finished", v.finishedAt],
    ["expires", v.expiresAt],
    ["workspace", v.workspace],
    ["archive", v.archive ? `${v.archive.bytes} bytes, sha256 ${v.archive.sha256}` : null],
    ["output", v.outputTruncated ? "truncated" : null],
  ];
  return rows
    .filter(([, x]) => x !== null && x !== "")
    .map(([k, x]) => `${`${k}:`.padEnd(11)}${String(x)}\n`)
    .join("");
}

function formatTable(tasks: readonly TaskView[]): string {
  const rows = [
    ["ID", "STATUS", "EXIT", "CREATED", "COMMAND"],
    ...tasks.map((t) => [
      t.id,
      t.status,
      t.exitCode === null ? "-" : String(t.exitCode),
      t.createdAt.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      truncate(t.command.map(quoteArg).join(" "), 60),
    ]),
  ];
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ") + "\n").join("");
}

const truncate = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const quoteArg = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

function progressBar(): (bytes: number, total: number | null) => void {
  let last = 0;
  const mb = (n: number) => (n / 1048576).toFixed(1);
  return (bytes, total) => {
    if (Date.now() - last < 100 && bytes !== total) return;
    last = Date.now();
    const pct = total ? ` (${Math.floor((bytes / total) * 100)}%)` : "";
    process.stderr.write(`\rberth: downloading ${mb(bytes)}${total ? `/${mb(total)}` : ""} MB${pct}`);
  };
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectPair(flag: string) {
  return (value: string, previous: Record<string, string> | undefined): Record<string, string> => {
    const at = value.indexOf("=");
    if (at === -1) throw new InvalidArgumentError(`${flag} takes KEY=VALUE.`);
    return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
  };
}

function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("expected a number.");
  return n;
}

/** Adds a hint to "unreachable": where the address came from and how to change it. */
export function withHint<A extends unknown[]>(action: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (err) {
      if (!isBerthApiError(err) || err.code !== UNREACHABLE) throw err;
      const where = clientEnv().urlFromEnv ? "BERTH_URL" : `the default address; set BERTH_URL to use another server`;
      throw new BerthApiError(0, UNREACHABLE, `${err.message} Is berth running there? (Using ${where}.)`, { cause: err });
    }
  };
}
