// Preloaded into a berth server process under test (`node --expose-gc --import ./test/helpers/memory-probe.js`):
// on SIGUSR2 it runs full garbage collections and writes the process's memory to MEMORY_PROBE_FILE, so a test
// can read the server's own retained memory, not its own. Written to a temp file and renamed: never half-read.
import { renameSync, writeFileSync } from "node:fs";

const file = process.env.MEMORY_PROBE_FILE;
if (!file) throw new Error("memory-probe: set MEMORY_PROBE_FILE to the path the report goes to");
if (typeof globalThis.gc !== "function") throw new Error("memory-probe: start node with --expose-gc");

let seq = 0;
process.on("SIGUSR2", () => {
  // V8's `external` counter still includes ArrayBuffers freed by the last collection until the next one runs:
  // collect until it stops falling (at most a few times).
  let last = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    globalThis.gc();
    const { external } = process.memoryUsage();
    if (external >= last) break;
    last = external;
  }
  const report = { seq: ++seq, pid: process.pid, ...process.memoryUsage() };
  writeFileSync(`${file}.tmp`, JSON.stringify(report));
  renameSync(`${file}.tmp`, file);
});
