// `berth usage` and `berth audit` (over HTTP, BERTH_URL and BERTH_API_KEY): what a tenant uses and holds, and who
// did what. With an admin key, `--tenant` picks a tenant (without it: every tenant).
import type { Command } from "commander";
import type { AuditEntry, TenantUsage } from "../../client/index.js";
import { clientCommand, clientFromEnv, withHint } from "./client.js";

export function registerAccountCommands(program: Command): void {
  const command = (name: string, description: string) => clientCommand(program, name, description);

  command("usage", "show queued and running tasks, stored bytes and CPU time used")
    .option("--since <when>", "CPU time since this ISO-8601 time or span back from now (24h, 7d); default 30 days")
    .option("--tenant <tenant>", "this tenant's (an admin key; without it, every tenant's)")
    .option("--json", "print JSON")
    .action(
      withHint(async (o: { since?: string; tenant?: string; json?: boolean }) => {
        const client = clientFromEnv();
        const opts = { ...(o.since ? { since: o.since } : {}) };
        const info = o.tenant ? null : await client.info();
        const all = info?.admin
          ? await client.usageOfAll(opts)
          : [await client.usage({ ...opts, ...(o.tenant ? { tenant: o.tenant } : {}) })];
        if (o.json) return void process.stdout.write(`${JSON.stringify(info?.admin ? all : all[0], null, 2)}\n`);
        process.stdout.write(
          table(
            ["TENANT", "QUEUED", "RUNNING", "STORED BYTES", "WORKSPACES", "ARCHIVES", "CACHES", "CPU SECONDS", "SINCE"],
            all.map((u: TenantUsage) => [
              u.tenant,
              String(u.queued),
              String(u.running),
              `${u.storedBytes.total}${u.limits.maxStoredBytes ? ` of ${u.limits.maxStoredBytes}` : ""}`,
              String(u.storedBytes.workspaces),
              String(u.storedBytes.archives),
              String(u.storedBytes.caches),
              String(u.cpuSeconds),
              u.since,
            ]),
          ),
        );
      }),
    );

  command("audit", "show the audit trail, newest first: who submitted, canceled, deleted, downloaded or read what")
    .option("--since <when>", "entries since this ISO-8601 time or span back from now (24h, 7d)")
    .option("--limit <n>", "at most this many entries (1-1000)", (v) => Number(v), 50)
    .option("--tenant <tenant>", "only this tenant's (an admin key; without it, all)")
    .option("--json", "print the entries as JSON")
    .action(
      withHint(async (o: { since?: string; limit: number; tenant?: string; json?: boolean }) => {
        const page = await clientFromEnv().audit({
          limit: o.limit,
          ...(o.since ? { since: o.since } : {}),
          ...(o.tenant ? { tenant: o.tenant } : {}),
        });
        if (o.json) return void process.stdout.write(`${JSON.stringify(page.entries, null, 2)}\n`);
        if (page.entries.length === 0) return void process.stderr.write("berth: no audit entries\n");
        process.stdout.write(
          table(
            ["TIME", "ACTION", "OUTCOME", "TENANT", "ACTOR", "KEY", "TASK", "FROM", "REQUEST"],
            page.entries.map((e: AuditEntry) => [
              e.time.replace("T", " ").replace(/\.\d+Z$/, "Z"),
              e.action,
              `${e.outcome} ${e.status}`,
              e.tenant ?? "-",
              e.actor,
              e.keyId ?? "-",
              e.taskId ?? "-",
              e.remoteAddress,
              e.requestId,
            ]),
          ),
        );
        if (page.nextCursor) process.stderr.write(`berth: showing the newest ${page.entries.length}; use --limit or --since for more\n`);
      }),
    );
}

function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all.map((r) => `${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")}\n`).join("");
}
