// `berth workspace list | info ID | remove ID | clean`: operator commands on this host's disk and Redis, with the
// server's own configuration (BERTH_* and .env). A readable table by default, `--json` for scripts.
// Removal goes through the same checks and locks as the scheduled cleanup (cleanup/sweep.ts). Server code is
// loaded only when one of these commands runs (cleanup/operator.ts), so the rest of the CLI starts fast.
import { InvalidArgumentError, type Command } from "commander";
import type { Deps } from "../../app/deps.js";
import type { Services } from "../../app/services.js";
import type { SweepRemoval, SweepResult } from "../../cleanup/sweep.js";
import { BerthError } from "../../errors.js";

type Operator = typeof import("../../cleanup/operator.js");

/** Runs `fn` with this host's Deps and services, opened as the server would and closed afterwards. */
async function local(fn: (deps: Deps, services: Services, op: Operator) => Promise<void>): Promise<void> {
  const op = await import("../../cleanup/operator.js");
  await op.local((deps, services) => fn(deps, services, op));
}

const DAY_MS = 86_400_000;

/** Operator commands on the local disk and Redis. */
export function registerWorkspaceCommands(program: Command): void {
  const ws = program
    .command("workspace")
    .description("inspect and clean this host's task workspaces and archives (run on the worker host)");

  ws.command("list")
    .description("every entry of the workspace and archive roots, with its task's status and size")
    .option("--json", "print JSON")
    .action((o: { json?: boolean }) =>
      local(async (deps, services, op) => {
        const rows = await op.inventory(deps, services);
        if (o.json) return printJson({ host: deps.host, entries: rows });
        printTable(
          ["WORKSPACE", "TASK", "STATUS", "SIZE", "FILES", "FINISHED", "EXPIRES", "NOTE"],
          rows.map((r) => [
            r.name,
            r.taskId ?? "-",
            r.status ?? "-",
            bytes(r.bytes),
            [r.workspaceDir ? "ws" : "", r.archive ? "tgz" : ""].filter(Boolean).join("+") || "-",
            r.finishedAt ?? "-",
            r.expiresAt ?? "-",
            r.note,
          ]),
        );
      }),
    );

  ws.command("info <id>")
    .description("one task's record and what of it is on this disk")
    .option("--json", "print JSON")
    .action((id: string, o: { json?: boolean }) =>
      local(async (deps, services, op) => {
        const record = await op.requireRecord(services, id);
        const files = {
          workspace: op.workspacePath(deps.config.dirs.workspaces, record.workspace),
          archive: op.archivePath(deps.config.dirs.archives, record.workspace),
        };
        const sizes = await op.diskUsage([files.workspace, files.archive]);
        const info = {
          ...record,
          onThisHost: record.host === null || record.host === deps.host,
          files: Object.fromEntries(
            Object.entries(files).map(([k, p]) => [k, { path: p, exists: sizes.has(p), bytes: sizes.get(p) ?? 0 }]),
          ),
        };
        if (o.json) return printJson(info);
        printTable(
          ["FIELD", "VALUE"],
          [
            ["id", record.id],
            ["status", record.status],
            ["tenant", record.tenant],
            ["host", `${record.host ?? "-"}${info.onThisHost ? "" : " (not this host)"}`],
            ["workspace", record.workspace],
            ["created", iso(record.createdAtMs)],
            ["finished", iso(record.finishedAtMs)],
            ["expires", iso(record.expiresAtMs)],
            ["exit code", String(record.exitCode ?? "-")],
            ["reason", record.reason ?? "-"],
            ["message", record.message ?? "-"],
            ...Object.values(info.files).map((f) => [f.path, f.exists ? bytes(f.bytes) : "absent"]),
          ],
        );
      }),
    );

  ws.command("remove <ids...>")
    .description("expire finished tasks now: remove their workspaces, archives and logs (never a queued or running task)")
    .option("--dry-run", "say what would be removed, remove nothing")
    .option("--json", "print JSON")
    .action((ids: string[], o: { dryRun?: boolean; json?: boolean }) =>
      local(async (deps, services, op) => {
        const dryRun = o.dryRun ?? false;
        const removed: SweepRemoval[] = [];
        const refused: { taskId: string; reason: string; detail: string }[] = [];
        for (const id of new Set(ids)) {
          try {
            const record = await op.requireRecord(services, id);
            const { outcome, removal } = await op.expireTaskNow(deps, services, record, { dryRun });
            if (outcome === "removed") removed.push(removal);
            else refused.push({ taskId: id, reason: outcome.reason, detail: outcome.detail });
          } catch (err) {
            const reason = err instanceof BerthError ? err.code : "error";
            refused.push({ taskId: id, reason, detail: err instanceof Error ? err.message.replace(/\.$/, "") : String(err) });
          }
        }
        if (refused.length > 0) process.exitCode = 1;
        if (o.json) return printJson({ dryRun, removed, refused });
        printRemovals(removed, dryRun);
        for (const r of refused) process.stderr.write(`berth: ${r.taskId} not removed: ${r.detail}.\n`);
        const total = removed.reduce((n, r) => n + r.bytes, 0);
        out(
          `${dryRun ? "dry run: would remove" : "removed"} ${removed.length} task(s), ${bytes(total)}${dryRun ? "" : "; they are now expired"}${refused.length > 0 ? `; ${refused.length} not removed` : ""}\n`,
        );
      }),
    );

  const clean = ws.command("clean");
  clean
    .description(
      "run one cleanup pass now: expire tasks whose ttl has run out (or, with --all, every finished task), and report what is left alone",
    )
    .option("--older-than-days <n>", "also expire finished tasks that finished at least N days ago (N may be fractional)", days)
    .option("--all", "expire every finished task's workspace and archive, whatever its age (as --older-than-days 0)")
    .option("--orphans", "also remove task-* entries that have no task record, once older than --older-than-days (default 7)")
    .option("--dry-run", "report exactly what a real pass would remove, remove nothing")
    .option("--json", "print JSON")
    .action((o: { olderThanDays?: number; all?: boolean; orphans?: boolean; dryRun?: boolean; json?: boolean }) => {
      if (o.all && o.olderThanDays !== undefined && !o.orphans) {
        clean.error(
          "error: --all already takes every finished task whatever its age; with it, --older-than-days only sets the age of --orphans",
          {
            exitCode: 2,
          },
        );
      }
      return local(async (deps, services, op) => {
        const result = await op.sweep(deps, services, {
          dryRun: o.dryRun ?? false,
          all: o.all ?? false,
          orphans: o.orphans ?? false,
          ...(o.olderThanDays !== undefined ? { olderThanMs: o.olderThanDays * DAY_MS } : {}),
        });
        if (result.errors.length > 0) process.exitCode = 1;
        if (o.json) return printJson(result);
        printSweep(result);
      });
    });
}

/** Each task removed (or that would be): id, workspace, bytes and why, in the order of the pass. */
function printRemovals(removed: readonly SweepRemoval[], dryRun: boolean): void {
  if (removed.length === 0) return;
  out(dryRun ? "would remove:\n" : "removed:\n");
  printTable(
    ["TASK", "WORKSPACE", "BYTES", "WHY"],
    removed.map((x) => [x.taskId, x.workspace, String(x.bytes), x.why]),
  );
}

function printSweep(r: SweepResult): void {
  const verb = r.dryRun ? "would remove" : "removed";
  printRemovals(r.removed, r.dryRun);
  if (r.purged.length > 0)
    printTable(
      ["RECORD DELETED (expired long ago)"],
      r.purged.map((id) => [id]),
    );
  if (r.skipped.length > 0)
    printTable(
      ["SKIPPED", "REASON", "DETAIL"],
      r.skipped.map((s) => [s.item, s.reason, s.detail]),
    );
  if (r.errors.length > 0)
    printTable(
      ["ERROR", "MESSAGE"],
      r.errors.map((e) => [e.item, e.message]),
    );
  const disk = r.disk ? `; disk ${bytes(r.disk.usedBytes)} used of a ${bytes(r.disk.budgetBytes)} budget` : "";
  out(
    `${r.dryRun ? "dry run: " : ""}${verb} ${r.removed.length} task(s), ${bytes(r.bytesReclaimed)}; ${r.purged.length} old record(s) ${r.dryRun ? "would be " : ""}deleted; ${r.skipped.length} skipped; ${r.errors.length} error(s)${disk}${r.more ? "; more remain, run again" : ""}\n`,
  );
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
