// The retained memory of a berth server running as its own process (see memory-probe.js), and the state of the
// TCP connections to it: what a test needs to measure the server alone, not itself.
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ServerProcess } from "./server-process.js";
import { waitFor } from "./wait-for.js";

const PROBE = path.join(path.dirname(fileURLToPath(import.meta.url)), "memory-probe.js");

/** Node options that load the probe; the server's env must set MEMORY_PROBE_FILE. */
export const MEMORY_PROBE_NODE_ARGS = ["--expose-gc", "--import", PROBE] as const;

export interface MemoryReport {
  readonly seq: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
}

/** What the server's JavaScript holds after full collections: its heap, and memory outside it (Buffers, external strings). */
export const held = (m: MemoryReport): number => m.heapUsed + m.external;

async function readReport(file: string): Promise<MemoryReport | null> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as MemoryReport;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}

/** Asks the server (SIGUSR2) for a fresh report, taken after full garbage collections, and waits for it. */
export async function serverMemory(server: ServerProcess, file: string): Promise<MemoryReport> {
  const before = (await readReport(file))?.seq ?? 0;
  server.proc.kill("SIGUSR2");
  const report = await waitFor(
    `berth (${server.namespace}) to report its memory`,
    () => readReport(file),
    (r) => r !== null && r.seq > before,
    { timeoutMs: 60_000, intervalMs: 50 },
  );
  return report as MemoryReport;
}

/** Bytes queued in the kernel on the TCP connections to `port` on 127.0.0.1 (from /proc/net/tcp). */
export async function loopbackQueues(port: number): Promise<{ connections: number; serverSend: number; clientReceive: number }> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const rows = (await readFile("/proc/net/tcp", "utf8")).split("\n").slice(1);
  let connections = 0;
  let serverSend = 0;
  let clientReceive = 0;
  for (const row of rows) {
    const [, local, remote, state, queues] = row.trim().split(/\s+/);
    if (!local || !remote || !queues || state !== "01") continue; // 01: ESTABLISHED
    const [tx = "0", rx = "0"] = queues.split(":");
    if (local.endsWith(`:${hexPort}`)) {
      connections++;
      serverSend += Number.parseInt(tx, 16);
    } else if (remote.endsWith(`:${hexPort}`)) clientReceive += Number.parseInt(rx, 16);
  }
  return { connections, serverSend, clientReceive };
}
