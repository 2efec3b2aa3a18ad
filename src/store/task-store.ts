// Task records and per-tenant indexes in Redis, under berth's own keys: a task's status stays readable and
// listable whatever BullMQ keeps or removes.
import type { TaskStatus } from "../contract/types.js";
import type { TaskRecord, TaskSpec } from "../domain/task.js";
import type { Keys } from "./keys.js";
import { confirmWrites, type RedisConnection } from "./redis.js";
import { SUMMARY, splitSummary, type TaskSummary } from "./task-summary.js";

export type { TaskSummary } from "./task-summary.js";

/** Record fields are stored one per hash field; `status` raw (Lua compares it), everything else as JSON. */
const encode = (fields: Partial<TaskRecord>): string[] =>
  Object.entries(fields).flatMap(([k, v]) => [k, k === "status" ? String(v) : JSON.stringify(v)]);

function decode(raw: Record<string, string>): TaskRecord | null {
  if (!raw.id || !raw.status) return null;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) out[k] = k === "status" ? v : JSON.parse(v);
  return out as unknown as TaskRecord;
}

/** Index member: fixed-width creation time then id, so BYLEX order is creation order and a cursor is exact. */
export const indexMember = (r: Pick<TaskRecord, "createdAtMs" | "id">) => `${String(r.createdAtMs).padStart(15, "0")}|${r.id}`;

// Creates a task. KEYS: the idempotency key, the tenant's active set, the record, the tenant's index, the spec and
// the records' common prefix (for the idempotent answer's EXISTS), all in one hash slot (keys.ts). ARGV: the
// request's fingerprint when an idempotency key was given (KEYS[1]), else ''; the tenant's limit, the id, the index
// member, the idempotency TTL, the spec, the changes channel, then the record's fields. Channels are arguments: a
// Redis Cluster refuses keys of other slots. The idempotency key's value is "<task id>|<fingerprint>" (a bare id,
// from before fingerprints were kept, matches any request).
const SUBMIT = `
if ARGV[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then
    local id, fp = string.match(existing, '^([^|]*)|?(.*)$')
    if redis.call('EXISTS', KEYS[6] .. id) == 1 then
      if fp ~= '' and fp ~= ARGV[1] then return {'reused', id} end
      return {'existing', id}
    end
  end
end
local active = redis.call('SCARD', KEYS[2])
if active >= tonumber(ARGV[2]) then return {'over_limit', tostring(active)} end
redis.call('HSET', KEYS[3], unpack(ARGV, 8))
redis.call('SET', KEYS[5], ARGV[6])
redis.call('ZADD', KEYS[4], 0, ARGV[4])
redis.call('SADD', KEYS[2], ARGV[3])
if ARGV[1] ~= '' then redis.call('SET', KEYS[1], ARGV[3] .. '|' .. ARGV[1], 'EX', tonumber(ARGV[5])) end
redis.call('PUBLISH', ARGV[7], '{"tenant":' .. redis.call('HGET', KEYS[3], 'tenant') .. ',"id":"' .. ARGV[3] .. '"}')
return {'created', ARGV[3]}
`;

// Changes a task only if its current status is one of ARGV[1] (comma separated). When the new status is final,
// also drops it from the tenant's active set, deletes its spec and, given a channel as ARGV[5], publishes the id
// (ARGV[4]) there; if ARGV[2] is a number, schedules its expiry. Every applied change is announced on ARGV[6] (as
// in SUBMIT). KEYS are the record, the tenant's active set, the expiry index and the spec: one hash slot (keys.ts).
// The id and the channels are arguments, not keys, since a Redis Cluster refuses a script whose keys lie in
// different slots.
const TRANSITION = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return false end
for allowed in string.gmatch(ARGV[1], '[^,]+') do
  if cur == allowed then
    redis.call('HSET', KEYS[1], unpack(ARGV, 7))
    if ARGV[3] == '1' then
      redis.call('SREM', KEYS[2], ARGV[4])
      redis.call('DEL', KEYS[4])
      if ARGV[5] ~= '' then redis.call('PUBLISH', ARGV[5], ARGV[4]) end
    end
    if ARGV[2] ~= '' then redis.call('ZADD', KEYS[3], tonumber(ARGV[2]), ARGV[4]) end
    redis.call('PUBLISH', ARGV[6], '{"tenant":' .. redis.call('HGET', KEYS[1], 'tenant') .. ',"id":"' .. ARGV[4] .. '"}')
    return 'ok'
  end
end
return cur
`;

export type SubmitOutcome =
  | { kind: "created"; id: string }
  | { kind: "existing"; id: string }
  | { kind: "reused"; id: string }
  | { kind: "over_limit"; active: number };

/** Most active tasks whose status {@link TaskStore.activeCounts} reads. */
const ACTIVE_SAMPLE = 10_000;

const PATCH = "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], unpack(ARGV)) end";

/** A Lua script defined on the connection: sent once, then called by its sha1 (EVALSHA). First argument: key count. */
type Script = (numKeys: number, ...args: string[]) => Promise<unknown>;
const SCRIPTS = { berthSubmit: SUBMIT, berthTransition: TRANSITION, berthPatch: PATCH, berthSummary: SUMMARY } as const;
type ScriptName = keyof typeof SCRIPTS;

export class TaskStore {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {
    for (const [name, lua] of Object.entries(SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { lua });
    }
  }

  /** TRANSITION's key count, keys and arguments. */
  private transitionArgs(
    id: string,
    tenant: string,
    from: readonly TaskStatus[],
    expiryScore: string,
    final: boolean,
    fields: Partial<TaskRecord>,
  ): [number, ...string[]] {
    const keys = [this.keys.task(id), this.keys.tenantActive(tenant), this.keys.expiry, this.keys.spec(id)];
    return [
      keys.length,
      ...keys,
      from.join(","),
      expiryScore,
      final ? "1" : "0",
      id,
      this.keys.finishedChannel,
      this.keys.changesChannel,
      ...encode(fields),
    ];
  }

  private run(name: ScriptName, numKeys: number, ...args: string[]): Promise<unknown> {
    return (this.redis as unknown as Record<ScriptName, Script>)[name].call(this.redis, numKeys, ...args);
  }

  /** Creates the record, its spec and index entries atomically, honouring idempotency and the tenant quota. */
  async create(
    record: TaskRecord,
    spec: TaskSpec,
    opts: {
      maxActive: number;
      idempotencyKeyHash: string | null;
      /** With an idempotency key: what the request asked for, so a different request under the same key is told apart. */
      requestFingerprint?: string | null;
      idempotencyTtlSeconds: number;
    },
  ): Promise<SubmitOutcome> {
    const idemKey = opts.idempotencyKeyHash ? this.keys.idempotency(record.tenant, opts.idempotencyKeyHash) : this.keys.task("-");
    const [kind, value] = (await this.run(
      "berthSubmit",
      6,
      idemKey,
      this.keys.tenantActive(record.tenant),
      this.keys.task(record.id),
      this.keys.tenantIndex(record.tenant),
      this.keys.spec(record.id),
      this.keys.task(""),
      opts.idempotencyKeyHash ? (opts.requestFingerprint ?? "-") : "",
      String(opts.maxActive),
      record.id,
      indexMember(record),
      String(opts.idempotencyTtlSeconds),
      JSON.stringify(spec),
      this.keys.changesChannel,
      ...encode(record),
    )) as [string, string];
    if (kind === "over_limit") return { kind, active: Number(value) };
    return { kind: kind as "created" | "existing" | "reused", id: value };
  }

  async get(id: string): Promise<TaskRecord | null> {
    return decode(await this.redis.hgetall(this.keys.task(id)));
  }

  /** Just the status and exit code: a small read, whatever else the record carries. */
  async getStatus(id: string): Promise<{ status: TaskStatus; exitCode: number | null } | null> {
    const [status, exitCode] = await this.redis.hmget(this.keys.task(id), "status", "exitCode");
    if (!status) return null;
    return { status: status as TaskStatus, exitCode: exitCode ? (JSON.parse(exitCode) as number | null) : null };
  }

  /** The record if it belongs to `tenant`; another tenant's task is indistinguishable from a missing one. */
  async getForTenant(tenant: string, id: string): Promise<TaskRecord | null> {
    const r = await this.get(id);
    return r && r.tenant === tenant ? r : null;
  }

  async getSpec(id: string): Promise<TaskSpec | null> {
    const raw = await this.redis.get(this.keys.spec(id));
    return raw ? (JSON.parse(raw) as TaskSpec) : null;
  }

  /**
   * Applies `fields` only when the task's status is one of `from`. Returns true when applied, otherwise the
   * current status (or null when the task does not exist). Moving to a final status releases the tenant's
   * quota slot, deletes the stored spec, schedules expiry at `fields.expiresAtMs` and announces the task's id on
   * the finished channel. Behind Sentinel, an applied change is confirmed by a replica before this returns.
   */
  async transition(
    id: string,
    tenant: string,
    from: readonly TaskStatus[],
    fields: Partial<TaskRecord>,
    final = false,
  ): Promise<true | TaskStatus | null> {
    const expires = fields.expiresAtMs != null ? String(fields.expiresAtMs) : "";
    const res = (await this.run("berthTransition", ...this.transitionArgs(id, tenant, from, expires, final, fields))) as string | null;
    if (res !== "ok") return (res as TaskStatus | null) ?? null;
    await confirmWrites(this.redis);
    return true;
  }

  /**
   * Waits until a replica holds every write made so far through this store's connection (behind Sentinel; at once
   * elsewhere). {@link create} does not wait, since its caller queues the task's job next on the same connection and
   * confirms both at once; {@link transition} and {@link transitionMany} wait before they return.
   */
  confirmWrites(): Promise<void> {
    return confirmWrites(this.redis);
  }

  /** Tells whichever worker runs the task to stop it (pub/sub; the record's cancelRequested flag is the fallback). */
  async publishCancel(id: string): Promise<void> {
    await this.redis.publish(this.keys.cancelChannel, id);
  }

  /** Answers when Redis does (readiness). */
  async ping(): Promise<void> {
    await this.redis.ping();
  }

  /** Sets fields whatever the status (flags such as cancelRequested or outputTruncated). No-op for a missing task. */
  async patch(id: string, fields: Partial<TaskRecord>): Promise<void> {
    await this.run("berthPatch", 1, this.keys.task(id), ...encode(fields));
  }

  /**
   * One page of a tenant's tasks, newest first. `cursor` is the index member of the last task of the previous
   * page. Filters are applied while scanning; at most `scanLimit` records are read per call, so a page may be
   * short but always carries the cursor to continue from. Record fields stored longer than `fieldMaxBytes` are
   * left out (named in `leftOut`), so a page's size does not grow with what its tasks carry.
   */
  async list(
    tenant: string,
    opts: { limit: number; cursor: string | null; status?: TaskStatus; label?: [string, string]; fieldMaxBytes: number },
  ): Promise<{ records: TaskSummary[]; nextCursor: string | null }> {
    const key = this.keys.tenantIndex(tenant);
    const out: TaskSummary[] = [];
    let from = opts.cursor ? `(${opts.cursor}` : "+";
    const scanLimit = Math.max(opts.limit * 20, 1000);
    let scanned = 0;
    for (;;) {
      const batch = Math.min(200, opts.limit * 2 + 10);
      const members = (await this.redis.call("ZRANGE", key, from, "-", "BYLEX", "REV", "LIMIT", "0", String(batch))) as string[];
      if (members.length === 0) return { records: out, nextCursor: null };
      const pipe = this.redis.pipeline();
      const summary = (pipe as unknown as Record<ScriptName, (numKeys: number, ...args: string[]) => unknown>).berthSummary;
      for (const m of members) summary.call(pipe, 1, this.keys.task(m.slice(m.indexOf("|") + 1)), String(opts.fieldMaxBytes));
      const rows = (await pipe.exec()) ?? [];
      for (let i = 0; i < members.length; i++) {
        const member = members[i] as string;
        scanned++;
        const { fields, leftOut } = splitSummary((rows[i]?.[1] ?? []) as string[]);
        const decoded = decode(fields);
        const rec: TaskSummary | null = decoded ? { ...decoded, leftOut } : null;
        if (rec && matches(rec, opts)) {
          out.push(rec);
          if (out.length === opts.limit) {
            const more = (await this.redis.call("ZRANGE", key, `(${member}`, "-", "BYLEX", "REV", "LIMIT", "0", "1")) as string[];
            return { records: out, nextCursor: more.length > 0 ? member : null };
          }
        }
        if (scanned >= scanLimit) return { records: out, nextCursor: member };
      }
      from = `(${members[members.length - 1]}`;
    }
  }

  /** Removes the record and everything indexed about it (not the files on disk, nor the log stream). */
  async remove(record: TaskRecord): Promise<void> {
    await this.redis
      .multi()
      .del(this.keys.task(record.id), this.keys.spec(record.id))
      .zrem(this.keys.tenantIndex(record.tenant), indexMember(record))
      .srem(this.keys.tenantActive(record.tenant), record.id)
      .zrem(this.keys.expiry, record.id)
      .publish(this.keys.changesChannel, JSON.stringify({ tenant: record.tenant, id: record.id, deleted: true }))
      .exec();
  }

  /**
   * How many of the tenant's tasks are queued and running. Reads the status of at most ACTIVE_SAMPLE of its active
   * tasks: exact up to that many (the tenant's BERTH_TENANT_MAX_ACTIVE is usually far below), beyond it `running`
   * counts the sample only and `queued` the rest.
   */
  async activeCounts(tenant: string): Promise<{ queued: number; running: number }> {
    const key = this.keys.tenantActive(tenant);
    const [[, total], [, ids]] = ((await this.redis.multi().scard(key).srandmember(key, ACTIVE_SAMPLE).exec()) ?? []) as [
      [unknown, number],
      [unknown, string[]],
    ];
    if (ids.length === 0) return { queued: 0, running: 0 };
    const rows = (await this.redis.pipeline(ids.map((id) => ["hget", this.keys.task(id), "status"])).exec()) ?? [];
    const running = rows.filter(([, status]) => status === "running").length;
    return { queued: Math.max(0, total - running), running };
  }

  /**
   * Many records in one round trip, in the order of `ids`: the record, null when there is none, or an Error when
   * the hash exists but cannot be decoded (or Redis answered that command with an error).
   */
  async getMany(ids: readonly string[]): Promise<(TaskRecord | null | Error)[]> {
    if (ids.length === 0) return [];
    const rows = (await this.redis.pipeline(ids.map((id) => ["hgetall", this.keys.task(id)])).exec()) ?? [];
    return ids.map((_, i) => {
      const [err, raw] = rows[i] ?? [new Error("no reply from Redis"), null];
      if (err) return err;
      const fields = raw as Record<string, string>;
      if (Object.keys(fields).length === 0) return null;
      try {
        return decode(fields) ?? new Error("damaged record");
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    });
  }

  /**
   * {@link getMany} for lists: each record without its fields stored longer than `fieldMaxBytes` (named in
   * `leftOut`), so what is read does not grow with what the tasks carry.
   */
  async getSummaries(ids: readonly string[], fieldMaxBytes: number): Promise<(TaskSummary | null | Error)[]> {
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    const summary = (pipe as unknown as Record<ScriptName, (numKeys: number, ...args: string[]) => unknown>).berthSummary;
    for (const id of ids) summary.call(pipe, 1, this.keys.task(id), String(fieldMaxBytes));
    const rows = (await pipe.exec()) ?? [];
    return ids.map((_, i) => {
      const [err, raw] = rows[i] ?? [new Error("no reply from Redis"), null];
      if (err) return err;
      const { fields, leftOut } = splitSummary(raw as string[]);
      if (Object.keys(fields).length === 0) return null;
      try {
        const record = decode(fields);
        return record ? { ...record, leftOut } : new Error("damaged record");
      } catch (e) {
        return e instanceof Error ? e : new Error(String(e));
      }
    });
  }

  /** Whether each task has a record (readable or not), in one round trip: true, false, or the error Redis answered. */
  async existsMany(ids: readonly string[]): Promise<(boolean | Error)[]> {
    if (ids.length === 0) return [];
    const rows = (await this.redis.pipeline(ids.map((id) => ["exists", this.keys.task(id)])).exec()) ?? [];
    return ids.map((_, i) => {
      const [err, n] = rows[i] ?? [new Error("no reply from Redis"), null];
      return err ?? n === 1;
    });
  }

  /**
   * {@link transition} for many tasks in one round trip, each applied on its own. `expiryScore`, when given, is
   * the task's score in the expiry index once the change applies (instead of `fields.expiresAtMs`). Per item:
   * true when applied, the current status, null when the task does not exist, or the error Redis answered.
   */
  async transitionMany(
    items: readonly {
      id: string;
      tenant: string;
      from: readonly TaskStatus[];
      fields: Partial<TaskRecord>;
      final?: boolean;
      expiryScore?: number;
    }[],
  ): Promise<(true | TaskStatus | null | Error)[]> {
    if (items.length === 0) return [];
    const pipe = this.redis.pipeline();
    const transition = (pipe as unknown as Record<ScriptName, (numKeys: number, ...args: string[]) => unknown>).berthTransition;
    for (const it of items) {
      const score = it.expiryScore ?? it.fields.expiresAtMs;
      transition.call(
        pipe,
        ...this.transitionArgs(it.id, it.tenant, it.from, score != null ? String(score) : "", it.final ?? false, it.fields),
      );
    }
    const rows = (await pipe.exec()) ?? [];
    if (rows.some(([err, res]) => !err && res === "ok")) await confirmWrites(this.redis);
    return items.map((_, i) => {
      const [err, res] = rows[i] ?? [new Error("no reply from Redis"), null];
      if (err) return err;
      return res === "ok" ? true : ((res as TaskStatus | null) ?? null);
    });
  }
}

function matches(r: TaskRecord, opts: { status?: TaskStatus; label?: [string, string] }): boolean {
  if (opts.status && r.status !== opts.status) return false;
  if (opts.label && r.labels[opts.label[0]] !== opts.label[1]) return false;
  return true;
}
