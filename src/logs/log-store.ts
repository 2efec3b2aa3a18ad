// A task's output, in order, as one Redis stream per task. Entry ids ("<ms>-<seq>") are the SSE event ids, so a
// follower can resume strictly after any event. The last entry of a finished task is an `end` marker.
//
// Entries this process appends are also handed straight to in-process listeners (the live hub), with the id of
// the entry this process appended just before them, so followers in this process get new output without reading
// it back from Redis. Followers elsewhere (or behind) read the stream itself.
import type { RedisConnection } from "../store/redis.js";
import type { EndEvent, LogStream, TaskStatus } from "../contract/types.js";
import type { Keys } from "../store/keys.js";

export interface LogEntry {
  readonly id: string;
  readonly stream: LogStream;
  readonly text: string;
  /** Milliseconds since the epoch, from the entry id. */
  readonly timeMs: number;
}

export type StoredEntry = LogEntry | { readonly id: string; readonly stream: "end"; readonly end: EndEvent; readonly timeMs: number };

/** An entry as stored: the output's bytes exactly as the task printed them (the end marker carries none). */
export interface RawEntry {
  readonly id: string;
  readonly stream: LogStream | "end";
  readonly data: Buffer;
}

/** New output of a task, as handed to a {@link LiveListener}: `text` may be given as the UTF-8 bytes stored. */
export interface NewEntry {
  readonly stream: LogStream;
  readonly data: Buffer | string;
}

/** Told about entries this process has just appended. */
export interface LiveListener {
  /** Whether anyone here follows the task (entries are only decoded and handed on if so). */
  wants(taskId: string): boolean;
  /**
   * `entries` directly follow `prevId` in the task's stream when `prevId` is not null; null means this process
   * does not know what precedes them (its previous append failed, or this is its first).
   */
  appended(taskId: string, prevId: string | null, entries: readonly StoredEntry[]): void;
}

const LOG_ID_PATTERN = /^(\d{1,20})-(\d{1,20})$/;
const U64_MAX = 2n ** 64n - 1n;
/** The largest stream id there can be. */
const LAST_LOG_ID = `${U64_MAX}-${U64_MAX}`;

/** Whether `id` is a Redis stream id: two unsigned 64-bit numbers, "<ms>-<seq>" (Redis refuses anything else). */
export function isLogId(id: string): boolean {
  const m = LOG_ID_PATTERN.exec(id);
  return m !== null && BigInt(m[1] as string) <= U64_MAX && BigInt(m[2] as string) <= U64_MAX;
}

function parse(id: string, fields: string[]): StoredEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
  const timeMs = Number(id.split("-")[0]);
  if (f.s === "end") {
    return { id, stream: "end", timeMs, end: { status: f.status as TaskStatus, exitCode: f.exitCode ? Number(f.exitCode) : null } };
  }
  return { id, stream: (f.s ?? "system") as LogStream, text: f.t ?? "", timeMs };
}

/** A failed append: the first `stored` entries were stored all the same. */
export class AppendError extends Error {
  constructor(
    cause: Error,
    readonly stored: number,
  ) {
    super(cause.message, { cause });
    this.name = "AppendError";
  }
}

const EMPTY = Buffer.alloc(0);

/** The bytes of entries this process appended, as they were stored (their `text` is decoded from them). */
const appendedBytes = new WeakMap<StoredEntry, Buffer>();
/** An entry's bytes as stored, when this process appended it (null otherwise: read them with readRawAfter). */
export const storedBytes = (entry: StoredEntry): Buffer | null => appendedBytes.get(entry) ?? null;

const timeOf = (id: string) => Number(id.slice(0, id.indexOf("-")));

export class LogStore {
  private readonly listeners = new Set<LiveListener>();
  /** Per task being written from this process: the id of the last entry it appended. */
  private readonly lastAppended = new Map<string, string>();

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /** Registers a listener for entries appended by this process; returns the function that removes it. */
  addLiveListener(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Appends entries in order. `data` is stored as given; bytes must end on a UTF-8 character boundary. */
  async append(taskId: string, entries: readonly NewEntry[]): Promise<void> {
    if (entries.length === 0) return;
    // One command each rather than a pipeline: ioredis copies a Buffer argument once into its command, and a
    // pipeline would copy every command again. Sent back to back on one connection, they still go in order.
    const key = this.keys.logs(taskId);
    const results = await Promise.all(
      entries.map((e) =>
        this.redis.xadd(key, "*", "s", e.stream, "t", e.data).then(
          (id): [Error | null, unknown] => [null, id],
          (err: Error): [Error | null, unknown] => [err, null],
        ),
      ),
    );
    const ids = this.settle(taskId, results);
    this.publish(taskId, ids, (i) => {
      const e = entries[i] as NewEntry;
      const entry: StoredEntry = {
        id: ids[i] as string,
        stream: e.stream,
        text: typeof e.data === "string" ? e.data : e.data.toString("utf8"),
        timeMs: timeOf(ids[i] as string),
      };
      if (typeof e.data !== "string") appendedBytes.set(entry, e.data);
      return entry;
    });
  }

  async appendEnd(taskId: string, end: EndEvent): Promise<void> {
    const pipe = this.redis
      .pipeline()
      .xadd(this.keys.logs(taskId), "*", "s", "end", "status", end.status, "exitCode", end.exitCode == null ? "" : String(end.exitCode));
    const ids = this.settle(taskId, await pipe.exec());
    this.publish(taskId, ids, (i) => ({ id: ids[i] as string, stream: "end", end, timeMs: timeOf(ids[i] as string) }), true);
  }

  /**
   * The new ids, or an {@link AppendError} saying how many leading entries were stored all the same (so a retry
   * sends only the rest). After an error nothing is known about what precedes the next append.
   */
  private settle(taskId: string, results: [Error | null, unknown][] | null): string[] {
    const rows = results ?? [[new Error("pipeline was not run"), null]];
    const first = rows.findIndex(([err]) => err);
    if (first !== -1) {
      this.lastAppended.delete(taskId);
      throw new AppendError(rows[first]?.[0] as Error, first);
    }
    return rows.map(([, id]) => id as string);
  }

  /** Hands new entries to the listeners that want them, decoded once. `ended`: nothing follows (the end marker). */
  private publish(taskId: string, ids: readonly string[], entry: (i: number) => StoredEntry, ended = false): void {
    const prevId = this.lastAppended.get(taskId) ?? null;
    if (ended) this.lastAppended.delete(taskId);
    else this.lastAppended.set(taskId, ids[ids.length - 1] as string);
    let entries: StoredEntry[] | undefined;
    for (const l of this.listeners) {
      if (!l.wants(taskId)) continue;
      entries ??= ids.map((_, i) => entry(i));
      try {
        l.appended(taskId, prevId, entries);
      } catch {
        // A listener's failure must not look like a failed write (the writer would append the entries again).
      }
    }
  }

  /** Up to `count` entries strictly after `afterId` ("0" = from the start). */
  async readAfter(taskId: string, afterId: string, count = 500): Promise<StoredEntry[]> {
    if (afterId === LAST_LOG_ID) return []; // nothing can follow it (and Redis refuses "(" before it)
    const rows = (await this.redis.xrange(this.keys.logs(taskId), `(${afterId}`, "+", "COUNT", count)) as [string, string[]][];
    return rows.map(([id, fields]) => parse(id, fields));
  }

  /**
   * Up to `count` entries strictly after `afterId`, with their bytes as stored (output that is not UTF-8 stays as it
   * was printed).
   */
  async readRawAfter(taskId: string, afterId: string, count = 500): Promise<RawEntry[]> {
    if (afterId === LAST_LOG_ID) return [];
    const rows = (await this.redis.xrangeBuffer(this.keys.logs(taskId), `(${afterId}`, "+", "COUNT", count)) as [Buffer, Buffer[]][];
    return rows.map(([id, fields]) => {
      let stream = "system";
      let data: Buffer = EMPTY;
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const name = (fields[i] as Buffer).toString("latin1");
        if (name === "s") stream = (fields[i + 1] as Buffer).toString("latin1");
        else if (name === "t") data = fields[i + 1] as Buffer;
      }
      return { id: id.toString("latin1"), stream: stream as RawEntry["stream"], data };
    });
  }

  /** Whether the task's stream ends with its end marker (written just after the final status is recorded). */
  async hasEnded(taskId: string): Promise<boolean> {
    const [last] = (await this.redis.xrevrange(this.keys.logs(taskId), "+", "-", "COUNT", 1)) as [string, string[]][];
    return last !== undefined && last[1][0] === "s" && last[1][1] === "end";
  }

  async remove(taskId: string): Promise<void> {
    await this.redis.unlink(this.keys.logs(taskId));
  }
}
