// `berth workspace list | info ID | remove ID | clean`: operator commands on this host's disk and Redis, with the
// server's own configuration (BERTH_* and .env). A readable table by default, `--json` for scripts.
// Removal goes through the same checks and locks as the scheduled cleanup (cleanup/sweep.ts).
import { InvalidArgumentError, type Command } from "commander";
import { pino } from "pino";
import type { Deps } from "../../app/deps.js";
import { createServices, type Services } from "../../app/services.js";
import { loadConfig } from "../../config/config.js";
import { TASK_ID_PATTERN, type TaskRecord } from "../../domain/task.js";
import { BerthError } from "../../errors.js";
import { buildDeps, loadDotEnv } from "../../main.js";
import { archivePath, workspacePath } from "../../workspace/workspace.js";
import { diskUsage, listLocalEntries, type DiskEntry } from "../../cleanup/disk-usage.js";
import { expireTaskNow, sweep, type SweepResult } from "../../cleanup/sweep.js";

const DAY_MS = 86_400_000;

/** Operator commands on the local disk and Redis. */
export function registerWorkspaceCommands(program: Command): void {
  const ws = program.command("workspace").description("inspect and clean this host's task workspaces and archives (run on the worker host)");

  ws.command("list")
    .description("every entry of the workspace and archive roots, with its task's status and size")
    .option("--json", "print JSON")
    .action((o: { json?: boolean }) => local(async (deps, services) => {
      const rows = await inventory(deps, services);
      if (o.json) return printJson({ host: deps.host, entries: rows });
      printTable(["WORKSPACE", "TASK", "STATUS", "SIZE", "FILES", "FINISHED", "EXPIRES", "NOTE"], rows.map((r) => [
        r.name, r.taskId ?? "-", r.status ?? "-", bytes(r.bytes), [r.workspaceDir ? "ws" : "", r.archive ? "tgz" : ""].filter(Boolean).join("+") || "-",
        r.finishedAt ?? "-", r.expiresAt ?? "-", r.note,
      ]));
    }));

  ws.command("info <id>")
    .description("one task's record and what of it is on this disk")
    .option("--json", "print JSON")
    .action((id: string, o: { json?: boolean }) => local(async (deps, services) => {
      const record = await requireRecord(services, id);
      const files = { workspace: workspacePath(deps.config.dirs.workspaces, record.workspace), archive: archivePath(deps.config.dirs.archives, record.workspace) };
      const sizes = await diskUsage([files.workspace, files.archive]);
      const info = {
        ...record, onThisHost: record.host === null || record.host === deps.host,
        files: Object.fromEntries(Object.entries(files).map(([k, p]) => [k, { path: p, exists: sizes.has(p), bytes: sizes.get(p) ?? 0 }])),
      };
      if (o.json) return printJson(info);
      printTable(["FIELD", "VALUE"], [
        ["id", record.id], ["status", record.status], ["tenant", record.tenant], ["host", `${record.host ?? "-"}${info.onThisHost ? "" : " (not this host)"}`],
        ["workspace", record.workspace], ["created", iso(record.createdAtMs)], ["finished", iso(record.finishedAtMs)], ["expires", iso(record.expiresAtMs)],
        ["exit code", String(record.exitCode ?? "-")], ["reason", record.reason ?? "-"], ["message", record.message ?? "-"],
        ...Object.values(info.files).map((f) => [f.path, f.exists ? bytes(f.bytes) : "absent"]),
      ]);
    }));

  ws.command("remove <id>")
    .description("expire one finished task now: remove its workspace, archive and logs (never a queued or running task)")
    .option("--dry-run", "say what would be removed, remove nothing")
    .option("--json", "print JSON")
    .action((id: string, o: { dryRun?: boolean; json?: boolean }) => local(async (deps, services) => {
      const record = await requireRecord(services, id);
      const { outcome, removal } = await expireTaskNow(deps, services, record, { dryRun: o.dryRun ?? false });
      if (outcome !== "removed") throw new BerthError("wrong_state", `Not removed: ${outcome.detail}.`, { reason: outcome.reason });
      if (o.json) return printJson({ dryRun: o.dryRun ?? false, removed: removal });
      const verb = o.dryRun ? "would remove" : "removed";
      out(`${verb} ${removal.workspace} (${bytes(removal.bytes)}${removal.files.length === 0 ? ", no files on disk" : ""})${o.dryRun ? "" : "; task is now expired"}\n`);
    }));

  ws.command("clean")
    .description("run one cleanup pass now: expire tasks whose ttl has run out, and report what is left alone")
    .option("--older-than-days <n>", "also expire finished tasks that finished at least N days ago (N may be fractional)", days)
    .option("--all", "also remove task-* entries that have no task record, if older than --older-than-days (default 7)")
    .option("--dry-run", "report exactly what a real pass would remove, remove nothing")
    .option("--json", "print JSON")
    .action((o: { olderThanDays?: number; all?: boolean; dryRun?: boolean; json?: boolean }) => local(async (deps, services) => {
      const result = await sweep(deps, services, { dryRun: o.dryRun ?? false, all: o.all ?? false, ...(o.olderThanDays !== undefined ? { olderThanMs: o.olderThanDays * DAY_MS } : {}) });
      if (result.errors.length > 0) process.exitCode = 1;
      if (o.json) return printJson(result);
      printSweep(result);
    }));
}

/** Builds Deps like the server does (same config, namespace from BERTH_NAMESPACE); logs go to stderr. */
async function local(fn: (deps: Deps, services: Services) => Promise<void>): Promise<void> {
  loadDotEnv();
  const config = loadConfig(process.env);
  const level = process.env.LOG_LEVEL ? config.logLevel : "warn";
  const logger = pino({ level, base: { service: "berth", role: "cli", pid: process.pid }, serializers: { err: pino.stdSerializers.err } }, pino.destination(2));
  const deps = await buildDeps(config, logger, config.namespace);
  const services = createServices(deps);
  try {
    await fn(deps, services);
  } finally {
    await services.queue.close().catch(() => undefined);
    await deps.close().catch(() => undefined);
  }
}

async function requireRecord(services: Services, id: string): Promise<TaskRecord> {
  if (!TASK_ID_PATTERN.test(id)) throw new BerthError("invalid_input", `Not a task id: ${JSON.stringify(id.slice(0, 80))}.`);
  const record = await services.store.get(id).catch((err: unknown) => {
    throw new BerthError("internal_error", `The record of task ${id} cannot be read (${(err as Error).message}); fix or delete it in Redis by hand.`);
  });
  if (!record) throw new BerthError("not_found", `No task ${id} in namespace ${services.keys.namespace}. Record-less directories are removed only by \`berth workspace clean --all\`.`);
  return record;
}

interface Row {
  name: string; taskId: string | null; status: string | null; tenant: string | null; host: string | null;
  workspaceDir: boolean; archive: boolean; bytes: number; finishedAt: string | null; expiresAt: string | null; note: string;
}

/** One row per workspace name (its directory and archive together), then one per entry berth did not make. */
async function inventory(deps: Deps, services: Services): Promise<Row[]> {
  const entries = await listLocalEntries(deps.config.dirs);
  const sizes = await diskUsage(entries.flatMap((e) => (e.path ? [e.path] : [])));
  const groups = new Map<string, DiskEntry[]>();
  const rows: Row[] = [];
  for (const e of entries) {
    if (e.workspace) groups.set(e.workspace, [...(groups.get(e.workspace) ?? []), e]);
    else {
      const note = e.kind === "temp" ? "archive being written (or left by a crash)" : "not made by berth; never removed";
      rows.push({ name: `${e.root}/${e.name}`, taskId: null, status: null, tenant: null, host: null, workspaceDir: false, archive: false, bytes: e.path ? (sizes.get(e.path) ?? 0) : 0, finishedAt: null, expiresAt: null, note });
    }
  }
  const named: Row[] = [];
  for (const [name, group] of groups) {
    const taskId = group[0]?.taskId ?? null;
    let record: TaskRecord | null = null;
    let note = "";
    try {
      record = taskId ? await services.store.get(taskId) : null;
      if (!record) note = "no task record";
      else if (record.workspace !== name) note = `record names ${record.workspace}`;
      else if (record.host !== null && record.host !== deps.host) note = `task ran on ${record.host}`;
    } catch {
      note = "record unreadable";
    }
    named.push({
      name, taskId, status: record?.status ?? null, tenant: record?.tenant ?? null, host: record?.host ?? null,
      workspaceDir: group.some((e) => e.kind === "workspace"), archive: group.some((e) => e.kind === "archive"),
      bytes: group.reduce((n, e) => n + (e.path ? (sizes.get(e.path) ?? 0) : 0), 0),
      finishedAt: record?.finishedAtMs ? iso(record.finishedAtMs) : null, expiresAt: record?.expiresAtMs ? iso(record.expiresAtMs) : null, note,
    });
  }
  named.sort((a, b) => a.name.localeCompare(b.name));
  return [...named, ...rows];
}

function printSweep(r: SweepResult): void {
  const verb = r.dryRun ? "would remove" : "removed";
  if (r.removed.length > 0) printTable(["REMOVED", "TASK", "WHY", "SIZE"], r.removed.map((x) => [x.workspace, x.taskId, x.why, bytes(x.bytes)]));
  if (r.purged.length > 0) printTable(["RECORD DELETED (expired long ago)"], r.purged.map((id) => [id]));
  if (r.skipped.length > 0) printTable(["SKIPPED", "REASON", "DETAIL"], r.skipped.map((s) => [s.item, s.reason, s.detail]));
  if (r.errors.length > 0) printTable(["ERROR", "MESSAGE"], r.errors.map((e) => [e.item, e.message]));
  const disk = r.disk ? `; disk ${bytes(r.disk.usedBytes)} used of a ${bytes(r.disk.budgetBytes)} budget` : "";
  out(`${r.dryRun ? "dry run: " : ""}${verb} ${r.removed.length} task(s), ${bytes(r.bytesReclaimed)}; ${r.purged.length} old record(s) ${r.dryRun ? "would be " : ""}deleted; ${r.skipped.length} skipped; ${r.errors.length} error(s)${disk}${r.more ? "; more remain, run again" : ""}\n`);
}

function days(raw: string): number {
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !Number.isFinite(n)) throw new InvalidArgumentError("must be a number of days, e.g. 7 or 0.5");
  return n;
}

const out = (s: string) => void process.stdout.write(s);
const printJson = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);
const iso = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"));

function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Columns padded to their widest cell; the last column is not padded. */
function printTable(header: string[], rows: string[][]): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  for (const r of all) out(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")}\n`);
}
