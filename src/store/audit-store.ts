// The audit trail in Redis: one capped stream per tenant (plus one for entries about no tenant), trimmed to the
// retention as entries are added, and a set naming the tenants that have one. Entries are written in batches.
import type { AuditEntry } from "../contract/types.js";
import type { Keys } from "./keys.js";
import type { RedisConnection } from "./redis.js";

/** Entries one stream keeps at most (about: trimming is by whole stream nodes), whatever the retention says. */
export const MAX_ENTRIES_PER_STREAM = 100_000;
/** Entries read from one stream for one page: pages are at most this long. */
export const MAX_PAGE = 1000;

export type NewAuditEntry = Omit<AuditEntry, "id">;

export class AuditStore {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /** Appends entries (one round trip), each to its tenant's stream, dropping what is older than `keepSinceMs`. */
  async append(entries: readonly NewAuditEntry[], keepSinceMs: number): Promise<void> {
    if (entries.length === 0) return;
    const pipe = this.redis.pipeline();
    const streams = new Set<string>();
    for (const e of entries) {
      const key = this.keys.auditStream(e.tenant);
      streams.add(key);
      pipe.xadd(key, "MAXLEN", "~", MAX_ENTRIES_PER_STREAM, "*", "e", JSON.stringify(e));
      if (e.tenant !== null) pipe.sadd(this.keys.auditTenants, e.tenant);
    }
    for (const key of streams) pipe.xtrim(key, "MINID", "~", String(Math.max(0, Math.floor(keepSinceMs))));
    const rows = (await pipe.exec()) ?? [];
    const failed = rows.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  /** Tenants that have audit entries. */
  async tenants(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.auditTenants)).sort();
  }

  /**
   * The newest entries of the given streams (a tenant, or null for entries about no tenant) written at or after
   * `sinceMs` and, with `before`, older than that entry: at most `limit`, newest first, merged across streams.
   */
  async read(streams: readonly (string | null)[], opts: { sinceMs: number; before: string | null; limit: number }): Promise<AuditEntry[]> {
    const limit = Math.min(MAX_PAGE, Math.max(1, opts.limit));
    const end = opts.before ? `(${opts.before}` : "+";
    const start = String(Math.max(0, Math.floor(opts.sinceMs)));
    const pipe = this.redis.pipeline();
    for (const s of streams) pipe.xrevrange(this.keys.auditStream(s), end, start, "COUNT", limit);
    const rows = (await pipe.exec()) ?? [];
    const all: AuditEntry[] = [];
    for (const [err, reply] of rows) {
      if (err) throw err;
      for (const [id, fields] of reply as [string, string[]][]) {
        const raw = fields[fields.indexOf("e") + 1];
        try {
          all.push({ id, ...(JSON.parse(raw ?? "") as NewAuditEntry) });
        } catch {
          // A damaged entry is left out.
        }
      }
    }
    return all.sort((a, b) => compareIds(b.id, a.id)).slice(0, limit);
  }
}

/** Stream ids (`<ms>-<seq>`) in time order. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split("-").map(Number);
  const [bm = 0, bs = 0] = b.split("-").map(Number);
  return am - bm || as - bs;
}
