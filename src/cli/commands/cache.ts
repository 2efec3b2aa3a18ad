// `berth cache list | remove NAME... | clean`: tenants' shared caches on this host, with the server's own
// configuration (BERTH_* and .env), like `berth workspace`. Server code is loaded only when a command runs.
import type { Command } from "commander";
import type { Deps } from "../../app/deps.js";
import type { Services } from "../../app/services.js";

type Operator = typeof import("../../cleanup/operator.js");

async function local(fn: (deps: Deps, services: Services, op: Operator) => Promise<void>): Promise<void> {
  const op = await import("../../cleanup/operator.js");
  await op.local((deps, services) => fn(deps, services, op));
}

/** Operator commands on this host's caches. */
export function registerCacheCommands(program: Command): void {
  const cache = program.command("cache").description("list and remove tenants' shared caches on this host (run on the worker host)");

  cache
    .command("list")
    .description("every cache on this host: its volume, tenant, name, size and last use")
    .option("--json", "print JSON")
    .action((o: { json?: boolean }) =>
      local(async (deps, services, op) => {
        const caches = await op.listCaches(deps, services);
        if (o.json) return printJson({ host: deps.host, caches });
        if (caches.length === 0) return void process.stderr.write("berth: no caches on this host\n");
        printTable(
          ["VOLUME", "TENANT", "CACHE", "BYTES", "LAST USED"],
          caches.map((c) => [c.volume, c.tenant, c.name, String(c.bytes), c.lastUsedAt ?? "-"]),
        );
      }),
    );

  cache
    .command("remove <names...>")
    .description("remove caches (each named by its volume, as listed, or as TENANT/CACHE); refused while a task uses one")
    .option("--dry-run", "say what would be removed, remove nothing")
    .option("--json", "print JSON")
    .action((names: string[], o: { dryRun?: boolean; json?: boolean }) =>
      local(async (deps, services, op) => {
        const caches = await op.listCaches(deps, services);
        const removed: typeof caches = [];
        const refused: { name: string; reason: string }[] = [];
        for (const name of new Set(names)) {
          const c = caches.find((x) => x.volume === name || `${x.tenant}/${x.name}` === name);
          const outcome = c ? await op.removeCache(deps, services, c, o.dryRun ? { dryRun: true } : {}) : "missing";
          if (outcome === "removed" && c) removed.push(c);
          else refused.push({ name, reason: outcome });
        }
        if (refused.length > 0) process.exitCode = 1;
        if (o.json) return printJson({ dryRun: o.dryRun ?? false, removed, refused });
        for (const c of removed) out(`${o.dryRun ? "would remove" : "removed"} ${c.volume} (${c.tenant}/${c.name}, ${c.bytes} bytes)\n`);
        for (const r of refused) process.stderr.write(`berth: ${r.name} not removed: ${WHY[r.reason] ?? r.reason}.\n`);
      }),
    );

  cache
    .command("clean")
    .description("remove the caches no task has used for BERTH_CACHE_IDLE_DAYS (what the scheduled cleanup does)")
    .option("--dry-run", "say what would be removed, remove nothing")
    .option("--json", "print JSON")
    .action((o: { dryRun?: boolean; json?: boolean }) =>
      local(async (deps, services, op) => {
        const result = await op.sweepCaches(deps, services, o.dryRun ? { dryRun: true } : {});
        if (o.json) return printJson({ dryRun: o.dryRun ?? false, ...result });
        for (const c of result.removed)
          out(`${o.dryRun ? "would remove" : "removed"} ${c.volume} (${c.tenant}/${c.name}, ${c.bytes} bytes)\n`);
        for (const s of result.skipped) out(`left ${s.volume}: ${WHY[s.reason] ?? s.reason}\n`);
      }),
    );
}

const WHY: Record<string, string> = {
  in_use: "a task is using it",
  locked: "a task is preparing it, or another removal holds it",
  used_since: "a task used it meanwhile",
  missing: "no such cache on this host (see berth cache list)",
};

const out = (s: string) => void process.stdout.write(s);
const printJson = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);

/** Columns padded to their widest cell; the last column is not padded. */
function printTable(header: string[], rows: string[][]): void {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  for (const r of all) out(`${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")}\n`);
}
