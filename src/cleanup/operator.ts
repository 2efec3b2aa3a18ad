// The operator commands' work on this host's disk and Redis (`berth workspace …`), with the server's own
// configuration (BERTH_* and .env). The CLI loads this module only when such a command runs.
import { pino } from "pino";
import type { Deps } from "../app/deps.js";
import { createServices, type Services } from "../app/services.js";
import { loadConfig, loadDotEnv, quietSdkNotices } from "../config/config.js";
import { TASK_ID_PATTERN, type TaskRecord } from "../domain/task.js";
import { BerthError } from "../errors.js";
import { buildDeps } from "../app/build-deps.js";
import { diskUsage, listLocalEntries, type DiskEntry } from "./disk-usage.js";

export { expireTaskNow, sweep, type SweepResult } from "./sweep.js";
export { diskUsage } from "./disk-usage.js";
export { listCaches, removeCache, sweepCaches, type CacheInfo } from "./caches.js";
export { archivePath, workspacePath } from "../workspace/workspace.js";

const iso = (ms: number | null) => (ms === null ? "-" : new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"));

/** Builds Deps like the server does (same config, namespace from BERTH_NAMESPACE); logs go to stderr. */
export async function local(fn: (deps: Deps, services: Services) => Promise<void>): Promise<void> {
  loadDotEnv();
  quietSdkNotices();
  const config = loadConfig();
  const level = config.logLevelGiven ? config.logLevel : "warn";
  const logger = pino(
    { level, base: { service: "berth", role: "cli", pid: process.pid }, serializers: { err: pino.stdSerializers.err } },
    pino.destination(2),
  );
  const deps = await buildDeps(config, logger, config.namespace);
  const services = createServices(deps);
  try {
    await fn(deps, services);
  } finally {
    await services.queue.close().catch(() => undefined);
    await deps.close().catch(() => undefined);
  }
}

export async function requireRecord(services: Services, id: string): Promise<TaskRecord> {
  if (!TASK_ID_PATTERN.test(id)) throw new BerthError("invalid_input", `Not a task id: ${JSON.stringify(id.slice(0, 80))}.`);
  const record = await services.store.get(id).catch((err: unknown) => {
    throw new BerthError(
      "internal_error",
      `The record of task ${id} cannot be read (${(err as Error).message}); fix or delete it in Redis by hand.`,
    );
  });
  if (!record)
    throw new BerthError(
      "not_found",
      `No task ${id} in namespace ${services.keys.namespace}. Record-less directories are removed only by \`berth workspace clean --orphans\`.`,
    );
  return record;
}

export interface Row {
  name: string;
  taskId: string | null;
  status: string | null;
  tenant: string | null;
  host: string | null;
  workspaceDir: boolean;
  archive: boolean;
  bytes: number;
  finishedAt: string | null;
  expiresAt: string | null;
  note: string;
}

/** One row per workspace name (its directory and archive together), then one per entry berth did not make. */
export async function inventory(deps: Deps, services: Services): Promise<Row[]> {
  const entries = await listLocalEntries(deps.config.dirs);
  const sizes = await diskUsage(entries.flatMap((e) => (e.path ? [e.path] : [])));
  const groups = new Map<string, DiskEntry[]>();
  const rows: Row[] = [];
  for (const e of entries) {
    if (e.workspace) groups.set(e.workspace, [...(groups.get(e.workspace) ?? []), e]);
    else {
      const note = e.kind === "temp" ? "archive being written (or left by a crash)" : "not made by berth; never removed";
      rows.push({
        name: `${e.root}/${e.name}`,
        taskId: null,
        status: null,
        tenant: null,
        host: null,
        workspaceDir: false,
        archive: false,
        bytes: e.path ? (sizes.get(e.path) ?? 0) : 0,
        finishedAt: null,
        expiresAt: null,
        note,
      });
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
      name,
      taskId,
      status: record?.status ?? null,
      tenant: record?.tenant ?? null,
      host: record?.host ?? null,
      workspaceDir: group.some((e) => e.kind === "workspace"),
      archive: group.some((e) => e.kind === "archive"),
      bytes: group.reduce((n, e) => n + (e.path ? (sizes.get(e.path) ?? 0) : 0), 0),
      finishedAt: record?.finishedAtMs ? iso(record.finishedAtMs) : null,
      expiresAt: record?.expiresAtMs ? iso(record.expiresAtMs) : null,
      note,
    });
  }
  named.sort((a, b) => a.name.localeCompare(b.name));
  return [...named, ...rows];
}
