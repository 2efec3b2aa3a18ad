// What both ways of following a task's logs (SSE in sse.ts, raw bytes in raw-follow.ts) share, whatever they write:
// the count of writes the kernel has not taken yet (nothing is read for a client until it has taken what it was
// sent), catching up from the hub's cache, the check whether the task has ended, the live wait on the hub, the
// watch that ends the stream when the server shuts down, and the stream's one ending (leave the hub, give back the
// slot, wake whoever waits).
import type { ServerResponse } from "node:http";
import type { FastifyRequest } from "fastify";
import { isFinalStatus, type TaskStatus } from "../contract/types.js";
import type { LiveHub } from "../logs/live-hub.js";
import { type LogReader, ReadSizer } from "../logs/log-reader.js";
import type { StoredEntry } from "../logs/log-store.js";
import type { TaskStore } from "../store/task-store.js";
import type { LogStreamSlots } from "./log-streams.js";

/**
 * Most bytes one client's connection may hold unsent. Past it, nothing more is written until the socket drains;
 * the rest stays in the store and is read again at the client's own pace. Bounds memory per (slow) client.
 */
export const MAX_BUFFERED_BYTES = 128 * 1024;
/** Entries taken from the hub's cache of recent entries at a time. */
const CACHE_BATCH = 32;

export interface StreamDeps {
  readonly reader: LogReader;
  readonly store: TaskStore;
  readonly hub: LiveHub;
  readonly slots: LogStreamSlots;
}

/** How a task ended, as its record says. */
export interface TaskEnd {
  readonly status: TaskStatus;
  readonly exitCode: number | null;
}

export interface FollowOptions {
  /** Gives back the client's slot of the caps on open log streams (taken before anything was sent). */
  readonly releaseSlot: () => void;
  /** The id of the last entry this client was sent: the hub hands it only what follows. */
  readonly position: () => string;
  /** How often a follower waiting for output re-checks whether the task has ended. */
  readonly statusCheckMs: number;
  /** Called once the HTTP server has stopped listening (it is shutting down) while the stream is open. */
  readonly onShutdown: () => void;
  /** Called first when the stream finishes: stops the route's own timers. */
  readonly onFinish?: () => void;
}

/** One client's stream of a task's logs, from the moment its response is hijacked and its head written. */
export class FollowStream {
  closed = false;
  /** Sizes this client's reads from the store. */
  readonly sizer: ReadSizer;
  // Writes whose bytes the kernel has not taken yet, and who waits for there to be none.
  private unflushed = 0;
  private flushWaiters: (() => void)[] = [];
  private detach: (() => void) | undefined;
  private wake: (() => void) | undefined;
  private readonly release: () => void;
  private readonly shutdownWatch: NodeJS.Timeout;

  constructor(
    request: FastifyRequest,
    private readonly res: ServerResponse,
    private readonly deps: StreamDeps,
    private readonly taskId: string,
    private readonly options: FollowOptions,
  ) {
    // Keeps the hub's cache of this task's latest entries while this client catches up.
    this.release = deps.hub.open(taskId);
    this.sizer = new ReadSizer(MAX_BUFFERED_BYTES, deps.reader.maxEntries);
    // A follower must not hold up shutdown: once the HTTP server stops listening (close() was called, which waits
    // for open connections), the route ends its stream.
    const http = request.server.server;
    const listening = http.listening; // not listening at all (inject): nothing to watch
    this.shutdownWatch = setInterval(() => {
      if (listening && !http.listening && !this.closed) options.onShutdown();
    }, 1000);
    res.on("close", this.finish);
  }

  /** Nothing written is waiting for the kernel. */
  get idle(): boolean {
    return this.unflushed === 0;
  }

  readonly send = (chunk: Buffer | string): void => {
    this.unflushed++;
    this.res.write(chunk, this.written);
  };

  private readonly written = () => {
    this.unflushed--;
    if (this.unflushed === 0) this.wakeFlushWaiters();
  };

  private wakeFlushWaiters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once everything written so far has left this process (or the client is gone). */
  private flushed(): Promise<void> {
    return this.idle || this.closed ? Promise.resolve() : new Promise<void>((resolve) => this.flushWaiters.push(resolve));
  }

  /**
   * Waits until this client has taken what it was sent (nothing is read for it before): false if the stream
   * closed meanwhile.
   */
  async ready(): Promise<boolean> {
    await this.flushed();
    return !this.closed;
  }

  /**
   * The next entries after this client's position from the hub's cache of the task's latest entries (shared
   * objects: no copy per client); null when the cache does not reach back that far or has nothing newer (the
   * store may still have it).
   */
  cached(): StoredEntry[] | null {
    const entries = this.deps.hub.recentAfter(this.taskId, this.options.position(), CACHE_BATCH);
    return entries?.length ? entries : null;
  }

  /** Ends this stream's hold on the server: stops its timers, leaves the hub, gives back its slot. Once. */
  readonly finish = (): void => {
    if (this.closed) return;
    this.closed = true;
    this.options.onFinish?.();
    clearInterval(this.shutdownWatch);
    this.detach?.();
    this.release();
    this.options.releaseSlot();
    this.wake?.();
    this.wakeFlushWaiters();
  };

  /**
   * Once caught up, whether the task has ended: "running" while it runs; "more" when `readOne` still finds an
   * entry after this client's position (catch up again); else how it ended (null when it is gone).
   */
  async afterCatchUp(readOne: (afterId: string) => Promise<readonly unknown[]>): Promise<"running" | "more" | TaskEnd | null> {
    const current = await this.deps.store.getStatus(this.taskId);
    if (current && !isFinalStatus(current.status)) return "running";
    const trailing = await readOne(this.options.position());
    return trailing.length > 0 ? "more" : current;
  }

  /**
   * Waits live: the hub hands the entries after this client's position to `write` (true: all written, more may
   * follow) until `write` says otherwise, this client falls behind (MAX_BUFFERED_BYTES unsent), the task ends or
   * the stream closes. Then it leaves the hub's fan-out; the rest is read from the store at this client's pace.
   */
  async waitLive(write: (entries: readonly StoredEntry[]) => boolean): Promise<void> {
    const { hub, store } = this.deps;
    const { position, statusCheckMs } = this.options;
    await new Promise<void>((resolve) => {
      // The task may end between our last read and the hub's first poll: re-check its status now and then.
      const check = setInterval(() => {
        void store.getStatus(this.taskId).then(
          (r) => {
            if (!r || isFinalStatus(r.status)) done();
          },
          () => undefined,
        );
      }, statusCheckMs);
      const done = () => {
        clearInterval(check);
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
      if (this.closed) return done();
      this.detach = hub.follow(this.taskId, {
        get lastId() {
          return position();
        },
        deliver: (entries) => {
          if (write(entries) && this.res.writableLength < MAX_BUFFERED_BYTES) return true;
          done();
          return false;
        },
      });
    });
    this.detach?.();
    this.detach = undefined;
  }
}
