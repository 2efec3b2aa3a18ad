// Live changes of a tenant's tasks, for `GET /v1/events` (the dashboard's list). The store announces every change
// (created, any transition, removed) on one pub/sub channel; one subscriber connection per server hears them. Changes
// are batched per tenant: every BATCH_MS the changed records are read once (one round trip) and the same frames go to
// every stream of that tenant. Nothing is kept for tenants nobody watches.
import type { Logger } from "pino";
import type { TaskCounts, TaskView } from "../contract/types.js";
import { closeConnection, openSubscriber, type RedisConnection } from "../store/redis.js";
import type { TaskStore } from "../store/task-store.js";
import { LIST_FIELD_MAX_BYTES, toListView } from "./views.js";

/** How long changes of one tenant are gathered before they are read and sent (the list's delay, at most). */
const BATCH_MS = 150;
/** Records read per batch; more changes than that wait for the next batch. */
const MAX_BATCH = 500;

/** One open stream. `send` returns false when the client cannot keep up (the stream is then dropped). */
export interface EventSink {
  send(frame: string): boolean;
  close(): void;
}

interface Watch {
  readonly sinks: Set<EventSink>;
  readonly pending: Set<string>;
  timer: NodeJS.Timeout | undefined;
  counts: TaskCounts | undefined;
}

export const frame = (event: string, data: unknown): string => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/** What an admin key watches: every tenant's changes (no tenant name holds `*`). */
export const ALL_TENANTS = "*";

export class TaskEvents {
  private readonly watches = new Map<string, Watch>();
  private subscriber: RedisConnection | undefined;
  private subscribed: Promise<void> | undefined;
  private stopping = false;

  constructor(
    private readonly redisUrl: string,
    private readonly channel: string,
    private readonly store: Pick<TaskStore, "getSummaries" | "activeCounts">,
    private readonly logger: Logger,
    /** The tenants {@link ALL_TENANTS} counts (the server's). */
    private readonly allTenants: () => readonly string[] = () => [],
  ) {}

  /** A tenant's queued and running tasks, or (for {@link ALL_TENANTS}) every tenant's together. */
  private async countsOf(tenant: string): Promise<TaskCounts> {
    if (tenant !== ALL_TENANTS) return this.store.activeCounts(tenant);
    const each = await Promise.all(this.allTenants().map((t) => this.store.activeCounts(t)));
    return each.reduce((a, b) => ({ queued: a.queued + b.queued, running: a.running + b.running }), { queued: 0, running: 0 });
  }

  /** Streams open now, over all tenants. */
  get size(): number {
    let n = 0;
    for (const w of this.watches.values()) n += w.sinks.size;
    return n;
  }

  streamsOf(tenant: string): number {
    return this.watches.get(tenant)?.sinks.size ?? 0;
  }

  /**
   * Starts sending `tenant`'s changes to `sink`, after a first `counts` event. Returns the function that stops it.
   * Changes are hints: a client re-reads what it shows whenever it (re)connects and on a `resync` event.
   */
  async watch(tenant: string, sink: EventSink): Promise<() => void> {
    if (this.stopping) {
      sink.close();
      return () => undefined;
    }
    let w = this.watches.get(tenant);
    if (!w) {
      w = { sinks: new Set(), pending: new Set(), timer: undefined, counts: undefined };
      this.watches.set(tenant, w);
    }
    const watch = w;
    watch.sinks.add(sink);
    const stop = () => {
      watch.sinks.delete(sink);
      if (watch.sinks.size === 0 && this.watches.get(tenant) === watch) {
        clearTimeout(watch.timer);
        this.watches.delete(tenant);
      }
    };
    await this.subscribe();
    if (!this.subscriber) {
      // No live changes to offer: the client retries, and re-reads what it shows when it reconnects.
      stop();
      sink.close();
      return () => undefined;
    }
    const counts = await this.countsOf(tenant);
    watch.counts ??= counts;
    if (!sink.send(frame("counts", counts))) sink.close();
    return stop;
  }

  /** Ends every stream (the server is shutting down) and takes no new ones. */
  release(): void {
    this.stopping = true;
    for (const w of this.watches.values()) {
      clearTimeout(w.timer);
      for (const s of [...w.sinks]) s.close();
    }
    this.watches.clear();
  }

  async close(): Promise<void> {
    this.release();
    if (this.subscriber) await closeConnection(this.subscriber);
    this.subscriber = undefined;
    this.subscribed = undefined;
  }

  private onMessage(raw: string): void {
    let msg: { tenant?: unknown; id?: unknown };
    try {
      msg = JSON.parse(raw) as typeof msg;
    } catch {
      return;
    }
    if (typeof msg.tenant !== "string" || typeof msg.id !== "string") return;
    for (const key of [msg.tenant, ALL_TENANTS]) {
      const w = this.watches.get(key);
      if (!w) continue;
      w.pending.add(msg.id);
      w.timer ??= setTimeout(() => void this.flush(key, w), BATCH_MS);
    }
  }

  private async flush(tenant: string, w: Watch): Promise<void> {
    const ids = [...w.pending].slice(0, MAX_BATCH);
    for (const id of ids) w.pending.delete(id);
    const frames: string[] = [];
    try {
      // List entries, as GET /v1/tasks gives them: their size does not grow with what the tasks carry.
      const [records, counts] = await Promise.all([this.store.getSummaries(ids, LIST_FIELD_MAX_BYTES), this.countsOf(tenant)]);
      records.forEach((r, i) => {
        if (r instanceof Error) return; // a damaged record: the list shows what GET /v1/tasks shows
        if (r === null || (r.tenant !== tenant && tenant !== ALL_TENANTS)) frames.push(frame("deleted", { id: ids[i] }));
        else frames.push(frame("task", toListView(r) satisfies TaskView));
      });
      if (counts.queued !== w.counts?.queued || counts.running !== w.counts?.running) {
        w.counts = counts;
        frames.push(frame("counts", counts));
      }
    } catch (err) {
      // Redis unreachable: tell the clients to re-read once they can, rather than showing stale rows silently.
      this.logger.warn({ err, tenant }, "could not read changed tasks for live views");
      frames.push(frame("resync", {}));
    }
    w.timer = w.pending.size > 0 ? setTimeout(() => void this.flush(tenant, w), BATCH_MS) : undefined;
    if (frames.length === 0) return;
    const text = frames.join("");
    for (const s of [...w.sinks]) if (!s.send(text)) s.close();
  }

  /** One subscriber connection, made on first use. After it reconnects, every client is told to re-read. */
  private subscribe(): Promise<void> {
    this.subscribed ??= openSubscriber(
      this.redisUrl,
      this.logger,
      "task-changes subscriber",
      this.channel,
      (message) => this.onMessage(message),
      (sub) => {
        let connectedBefore = false;
        sub.on("ready", () => {
          if (connectedBefore) {
            // Changes announced while it was away were missed.
            const text = frame("resync", {});
            for (const w of this.watches.values()) for (const s of [...w.sinks]) if (!s.send(text)) s.close();
          }
          connectedBefore = true;
        });
        this.subscriber = sub;
      },
    ).then(
      () => undefined,
      (err: unknown) => {
        this.logger.warn({ err }, "could not subscribe to task changes; live views will only refresh on reconnect");
        const sub = this.subscriber;
        this.subscriber = undefined;
        this.subscribed = undefined;
        if (sub) void closeConnection(sub);
      },
    );
    return this.subscribed;
  }
}
