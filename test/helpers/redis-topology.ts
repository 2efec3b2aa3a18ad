// A throwaway Redis Sentinel or Cluster topology for one test file, started and stopped by scripts/redis-topology.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";

export interface Topology {
  /** Everything the script printed: BERTH_REDIS_URL, ports, the password. */
  readonly env: Readonly<Record<string, string>>;
  readonly url: string;
  /** Where its configs, logs and pid files are. */
  readonly dir: string;
  /** The pid of the redis-server listening on `port` (master, replica or cluster node). */
  pidOf(port: number): Promise<number>;
  /** Starts again, from its configuration, the redis-server that listened on `port`, with extra arguments. */
  restart(port: number, args?: readonly string[]): Promise<void>;
  /** Stops every server of the topology and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

const SCRIPT = path.join(process.cwd(), "scripts/redis-topology");

export async function startTopology(kind: "sentinel" | "cluster", extraEnv: Record<string, string> = {}): Promise<Topology> {
  const parent = await mkdtemp(path.join(tmpdir(), `berth-redis-${kind}-`));
  const dir = path.join(parent, "topology");
  const stop = async () => {
    await execa(SCRIPT, ["stop", dir], { reject: false });
    await rm(parent, { recursive: true, force: true });
  };
  const nameOf = async (port: number) => {
    for (const name of ["master", "replica", "node-1", "node-2", "node-3"]) {
      const conf = await readFile(path.join(dir, `${name}.conf`), "utf8").catch(() => "");
      if (new RegExp(`^port ${port}$`, "m").test(conf)) return name;
    }
    throw new Error(`no redis-server of this topology listens on port ${port}`);
  };
  try {
    const { stdout } = await execa(SCRIPT, ["start", kind, dir], { env: extraEnv, timeout: 120_000 });
    const env = Object.fromEntries(
      stdout
        .split("\n")
        .filter((l) => l.includes("="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    return {
      env,
      url: env.BERTH_REDIS_URL as string,
      dir,
      async pidOf(port) {
        return Number((await readFile(path.join(dir, `${await nameOf(port)}.pid`), "utf8")).trim());
      },
      async restart(port, args = []) {
        // redis-server daemonizes (and writes its pid file) once it listens.
        await execa("redis-server", [path.join(dir, `${await nameOf(port)}.conf`), ...args]);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
