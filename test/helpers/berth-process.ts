// berth roles as separate processes (`node dist/cli/main.js api|worker|serve`) that share one namespace, Redis
// and archive store: several "hosts" of one deployment on this machine.
import net from "node:net";
import { execa, type ResultPromise } from "execa";
import { waitFor } from "./wait-for.js";

export interface BerthProcess {
  readonly role: "serve" | "api" | "worker";
  readonly env: Record<string, string>;
  proc: ResultPromise;
  /** stdout + stderr so far. */
  output(): string;
  /** Starts the same process again (same environment) after it exited. */
  restart(): Promise<void>;
  /** SIGTERM (or `signal`), then waits for the exit; SIGKILL after 30 s. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

/**
 * Starts a role with exactly `env` (plus PATH, HOME and no warm pool unless set) and waits until it serves: its
 * "listening on" line, or for a worker without an HTTP server its "worker started" log line.
 */
export async function spawnBerth(role: "serve" | "api" | "worker", env: Record<string, string>): Promise<BerthProcess> {
  let out = "";
  // As in the in-process harness: every task cold unless the test (or BERTH_TEST_WARM_POOL) asks for a pool.
  const fullEnv = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    LOG_LEVEL: "info",
    BERTH_WARM_POOL: process.env.BERTH_TEST_WARM_POOL ?? "0",
    ...env,
  };
  const start = async () => {
    const proc = execa("node", ["dist/cli/main.js", role], { env: fullEnv, extendEnv: false, reject: false, all: true });
    const from = out.length;
    proc.all?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(
      `berth ${role} (${env.BERTH_NODE_ID ?? ""}) to start`,
      async () => out.slice(from),
      (o) => o.includes("listening on") || o.includes('"msg":"worker started"') || proc.exitCode !== null,
      { timeoutMs: 60_000 },
    );
    if (proc.exitCode !== null) throw new Error(`berth ${role} exited at start: ${out.slice(from)}`);
    // Wrapped: returning the (thenable) process from an async function would wait for it to exit.
    return { proc };
  };
  const bp: BerthProcess = {
    role,
    env: fullEnv,
    proc: (await start()).proc,
    output: () => out,
    async restart() {
      bp.proc = (await start()).proc;
    },
    async stop(signal = "SIGTERM") {
      if (bp.proc.exitCode !== null || bp.proc.signalCode !== null) return;
      bp.proc.kill(signal);
      const timer = setTimeout(() => bp.proc.kill("SIGKILL"), 30_000);
      await bp.proc;
      clearTimeout(timer);
    },
  };
  return bp;
}

/** Runs a role that is expected to refuse to start; resolves with its exit code and what it printed. */
export async function startFails(role: "serve" | "api" | "worker", env: Record<string, string>, timeoutMs = 60_000) {
  const res = await execa("node", ["dist/cli/main.js", role], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/root", ...env },
    extendEnv: false,
    reject: false,
    timeout: timeoutMs,
  });
  return { exitCode: res.exitCode, stdout: res.stdout, stderr: res.stderr, timedOut: res.timedOut };
}
