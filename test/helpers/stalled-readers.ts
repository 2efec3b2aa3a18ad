// Hostile followers for tests: many sockets that request a response and never read it (see stalled-readers.py).
import path from "node:path";
import { execa } from "execa";
import type { Harness } from "./harness.js";
import { waitFor } from "./wait-for.js";

export interface StalledReaders {
  /** Closes every socket and waits for the process to exit. */
  close(): Promise<void>;
}

export async function startStalledReaders(opts: {
  url: string;
  path: string;
  authorization: string;
  count: number;
  accept?: string;
}): Promise<StalledReaders> {
  const { hostname, port } = new URL(opts.url);
  const script = path.resolve("test/helpers/stalled-readers.py");
  const accept = opts.accept ?? "text/event-stream";
  const proc = execa("python3", [script, hostname, port, opts.path, opts.authorization, accept, String(opts.count)], {
    reject: false,
    stdin: "pipe",
  });
  let out = "";
  await new Promise<void>((resolve, reject) => {
    proc.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (out.includes(`connected ${opts.count}`)) resolve();
    });
    void proc.then((r) => reject(new Error(`stalled readers exited early (${r.exitCode}): ${r.stderr}`)));
  });
  return {
    async close() {
      proc.stdin?.end();
      await proc;
    },
  };
}

/**
 * Waits until the server reads no more log entries for anyone (none reading, none waiting, the count still for a
 * second): every stalled stream has taken what its socket would take. Returns the log reader's counters then.
 */
export async function logReadsSettled(h: Harness) {
  let previous = -1;
  return waitFor(
    "log reads to stop",
    async () => {
      const stats = h.app.berthCounters.logReads();
      const same = stats.reads === previous;
      previous = stats.reads;
      return { ...stats, same };
    },
    (s) => s.same && s.active === 0 && s.waiting === 0,
    { intervalMs: 1000, timeoutMs: 120_000 },
  );
}
