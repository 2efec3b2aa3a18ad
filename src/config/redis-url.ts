// BERTH_REDIS_URL's three forms, read without touching the network:
//   redis[s]://[[user]:password@]host[:port][/db]                 one Redis (handed to ioredis as it is)
//   redis[s]+sentinel://[[user]:password@]h1[:port],h2[:port]/<master-name>   the master that Sentinel names
//   redis[s]+cluster://[[user]:password@]h1[:port],h2[:port]       a Redis Cluster, found from any of its nodes
// A problem is described without the user name or password: the URL carries a secret.

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

interface Credentials {
  readonly username?: string;
  readonly password?: string;
  /** rediss: TLS to every node (and, for Sentinel, to the sentinels). */
  readonly tls: boolean;
}

export type RedisTarget =
  | { readonly kind: "single"; readonly url: string }
  | ({ readonly kind: "sentinel"; readonly sentinels: readonly RedisNode[]; readonly masterName: string } & Credentials)
  | ({ readonly kind: "cluster"; readonly nodes: readonly RedisNode[] } & Credentials);

/** BERTH_REDIS_URL cannot be used; the message never contains the user name or password. */
export class RedisUrlError extends Error {
  override readonly name = "RedisUrlError";
}

/** At most this many hosts in one URL: a list of sentinels or seed nodes, not an inventory. */
const MAX_HOSTS = 32;
const SENTINEL_SHAPE = "redis+sentinel://[:password@]host:port[,host:port...]/<master-name>";
const CLUSTER_SHAPE = "redis+cluster://[:password@]host:port[,host:port...]";
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;
const MASTER_NAME = /^[A-Za-z0-9._-]{1,128}$/;

export function parseRedisUrl(url: string): RedisTarget {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme === "redis" || scheme === "rediss") return single(url);
  if (scheme === "redis+sentinel" || scheme === "rediss+sentinel") return sentinel(url, scheme);
  if (scheme === "redis+cluster" || scheme === "rediss+cluster") return cluster(url, scheme);
  throw new RedisUrlError(
    "must start with redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://",
  );
}

/** Where the target is, for messages and logs: hosts and the master's name, never credentials. */
export function describeRedisTarget(target: RedisTarget): string {
  switch (target.kind) {
    case "single":
      try {
        const where = new URL(target.url);
        return `Redis at ${where.hostname || "127.0.0.1"}:${where.port || 6379}`;
      } catch {
        return "Redis";
      }
    case "sentinel":
      return `Redis master "${target.masterName}" through the sentinels at ${target.sentinels.map(hostPort).join(",")}`;
    case "cluster":
      return `Redis Cluster at ${target.nodes.map(hostPort).join(",")}`;
  }
}

const hostPort = (n: RedisNode) => (n.host.includes(":") ? `[${n.host}]:${n.port}` : `${n.host}:${n.port}`);

function single(url: string): RedisTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RedisUrlError("is not a valid URL (redis://[[user]:password@]host[:port][/db])");
  }
  const db = parsed.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d{1,2}$/.test(db)) throw new RedisUrlError(`names database "${db}"; a database is a number such as /0`);
  return { kind: "single", url };
}

function sentinel(url: string, scheme: string): RedisTarget {
  const { credentials, hosts, path } = split(url, scheme, SENTINEL_SHAPE);
  const masterName = path.replace(/^\//, "");
  if (masterName === "") throw new RedisUrlError(`names no master after the hosts; expected ${SENTINEL_SHAPE}`);
  if (!MASTER_NAME.test(masterName)) {
    throw new RedisUrlError(
      `names master "${masterName.slice(0, 64)}"; a master name is 1-128 characters of A-Z, a-z, 0-9, ".", "_" and "-"`,
    );
  }
  return { kind: "sentinel", sentinels: nodes(hosts, 26379, SENTINEL_SHAPE), masterName, ...credentials };
}

function cluster(url: string, scheme: string): RedisTarget {
  const { credentials, hosts, path } = split(url, scheme, CLUSTER_SHAPE);
  if (path !== "" && path !== "/")
    throw new RedisUrlError(`has a path ("${path.slice(0, 64)}"); a Redis Cluster has only database 0, so give none`);
  return { kind: "cluster", nodes: nodes(hosts, 6379, CLUSTER_SHAPE), ...credentials };
}

/** Splits `scheme://[userinfo@]hosts[/path]`; the URL class cannot read a comma-separated host list. */
function split(url: string, scheme: string, shape: string): { credentials: Credentials; hosts: string; path: string } {
  const rest = url.slice(scheme.length + 3);
  if (/[?#]/.test(rest)) throw new RedisUrlError(`has a query or fragment, which this form does not take; expected ${shape}`);
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash);
  const at = authority.lastIndexOf("@");
  const tls = scheme.startsWith("rediss");
  if (at === -1) return { credentials: { tls }, hosts: authority, path };
  const userinfo = authority.slice(0, at);
  const colon = userinfo.indexOf(":");
  const username = decode(colon === -1 ? userinfo : userinfo.slice(0, colon), "user name");
  const password = colon === -1 ? undefined : decode(userinfo.slice(colon + 1), "password");
  return {
    credentials: { tls, ...(username ? { username } : {}), ...(password ? { password } : {}) },
    hosts: authority.slice(at + 1),
    path,
  };
}

function decode(part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new RedisUrlError(`has a ${what} that is not valid percent-encoding (write % as %25)`);
  }
}

function nodes(list: string, defaultPort: number, shape: string): RedisNode[] {
  const entries = list.split(",");
  if (list === "" || entries.some((e) => e === "")) throw new RedisUrlError(`has an empty host; expected ${shape}`);
  if (entries.length > MAX_HOSTS) throw new RedisUrlError(`lists ${entries.length} hosts; at most ${MAX_HOSTS} are taken`);
  return entries.map((entry) => {
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry);
    const host = m?.[1] ?? m?.[2];
    const port = m?.[3] === undefined ? defaultPort : Number(m[3]);
    if (!m || !host || (m[2] !== undefined && !HOSTNAME.test(host)) || port < 1 || port > 65_535) {
      throw new RedisUrlError(`has "${entry.slice(0, 80)}" where a host[:port] belongs; expected ${shape}`);
    }
    return { host, port };
  });
}
