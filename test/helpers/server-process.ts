// berth as a separate process (`node dist/cli/main.js serve`), for tests that kill, signal or starve it.
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import net from "node:net";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { connectTestRedis, sweepNamespace } from "./sweep.js";
import { waitFor } from "./wait-for.js";

export interface ServerProcess {
  readonly url: string;
  readonly namespace: string;
  readonly root: string;
  readonly env: Record<string, string>;
  proc: ResultPromise;
  /** Output of the process so far (stdout + stderr), for assertions and failure messages. */
  output(): string;
  /** Starts the same server again (same namespace, dirs and port) after it exited. */
  restart(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export interface SpawnOptions {
  /** Options for node itself, before the script (e.g. `--expose-gc`, `--import <preload>`). */
  readonly nodeArgs?: readonly string[];
}

export async function spawnServer(
  env: Record<string, string> = {},
  role: "serve" | "api" | "worker" = "serve",
  opts: SpawnOptions = {},
): Promise<ServerProcess> {
  const namespace = `berth-fault-${randomUUID().slice(0, 8)}`;
  const root = await mkdtemp(path.join(tmpdir(), `${namespace}-`));
  const port = await freePort();
  const fullEnv: Record<string, string> = {
    BERTH_NAMESPACE: namespace,
    BERTH_PORT: String(port),
    BERTH_WORKSPACE_DIR: `${root}/workspaces`,
    BERTH_ARCHIVE_DIR: `${root}/archives`,
    BERTH_CACHE_DIR: `${root}/caches`,
    BERTH_STOP_GRACE_SECONDS: "2",
    LOG_LEVEL: "info",
    // As in the in-process harness: every task cold unless the test (or BERTH_TEST_WARM_POOL) asks for a pool.
    BERTH_WARM_POOL: process.env.BERTH_TEST_WARM_POOL ?? "0",
    ...env,
  };
  let out = "";
  const start = async () => {
    const proc = execa("node", [...(opts.nodeArgs ?? []), "dist/cli/main.js", role], {
      env: fullEnv,
      reject: false,
      all: true,
      cwd: process.cwd(),
    });
    const from = out.length;
    proc.all?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(
      `berth (${namespace}) to listen`,
      async () => out.slice(from),
      (o) => o.includes("listening on") || proc.exitCode !== null,
      { timeoutMs: 30_000 },
    );
    if (proc.exitCode !== null) throw new Error(`berth exited at start: ${out}`);
    // Wrapped: returning the (thenable) process from an async function would wait for it to exit.
    return { proc };
  };
  const sp: ServerProcess = {
    url: `http://127.0.0.1:${port}`,
    namespace,
    root,
    env: fullEnv,
    proc: (await start()).proc,
    output: () => out,
    async restart() {
      sp.proc = (await start()).proc;
    },
    async cleanup() {
      if (sp.proc.exitCode === null) {
        sp.proc.kill("SIGKILL");
        await sp.proc;
      }
      await sweepNamespace(namespace, fullEnv.BERTH_REDIS_URL);
      // A killed worker leaves its workspace and cache roots mounted nosuid,nodev (src/workspace/mount.ts).
      await execa("umount", ["-l", "--", `${root}/workspaces`], { reject: false });
      await execa("umount", ["-l", "--", `${root}/caches`], { reject: false });
      await rm(root, { recursive: true, force: true });
    },
  };
  return sp;
}

/** A connected client for the tests' Redis (any BERTH_REDIS_URL form); the caller disconnects it. */
export const redisFor = (url?: string) => connectTestRedis(url);
