// A redis-server of one test file's own, on a free port, with its data in a temp directory (append-only, fsync on
// every write, no eviction: as berth wants it). Stopping and starting it again is how a test takes Redis away; the
// shared Redis on 6379 is never touched.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { freePort } from "./server-process.js";
import { waitFor } from "./wait-for.js";

export interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  /** Starts it (again, from its data) and waits until it answers. */
  start(): Promise<void>;
  /** Shuts it down (saving nothing more: what is acknowledged is on disk already). */
  stop(): Promise<void>;
  answers(): Promise<boolean>;
  /** Stops it and removes its directory. */
  remove(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const dir = await mkdtemp(path.join(tmpdir(), "berth-redis-"));
  const port = await freePort();
  const cli = (...args: string[]) => execa("redis-cli", ["-p", String(port), ...args], { reject: false });
  const answers = () => cli("ping").then((r) => r.stdout === "PONG");
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--daemonize", "yes", "--dir", dir];
  const settings = ["--appendonly", "yes", "--appendfsync", "always", "--maxmemory-policy", "noeviction", "--save", ""];
  const redis: PrivateRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    async start() {
      if (!(await answers())) await execa("redis-server", [...args, ...settings]);
      await waitFor(`the private redis-server on port ${port}`, answers, (ok) => ok);
    },
    async stop() {
      await cli("shutdown");
    },
    answers,
    async remove() {
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await redis.start();
  return redis;
}
