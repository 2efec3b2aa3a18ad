// Long polling for a task's end: `GET /v1/tasks/:id?waitSeconds=N` answers as soon as the task reaches a final
// status. The store's final transition publishes the task's id on a channel, whichever process made it; one
// subscriber connection per server wakes every waiter of that id. A message missed while that connection
// reconnects is covered by re-reading the record every few seconds.
import type { Logger } from "pino";
import { closeConnection, openSubscriber, type RedisConnection } from "../store/redis.js";

/** How often a waiter re-reads the record anyway, by default. */
const RECHECK_MS = 2000;

export interface TaskWaiterOptions {
  /**
   * How often an open long poll re-reads its task whatever it has heard, in ms (the fallback for a missed
   * announcement). Default 2000. Tests set it out of a poll's reach to prove that the announcement alone wakes it.
   */
  readonly recheckMs?: number;
}

export class TaskWaiter {
  private readonly waiters = new Map<string, Set<{ check: () => void; finish: () => void }>>();
  private stopping = false;
  private subscriber: RedisConnection | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly recheckMs: number;

  constructor(
    private readonly redisUrl: string,
    private readonly channel: string,
    private readonly logger: Logger,
    opts: TaskWaiterOptions = {},
  ) {
    this.recheckMs = opts.recheckMs ?? RECHECK_MS;
  }

  /** Long polls open for the task right now (registered, not yet answered). */
  openPolls(taskId: string): number {
    return this.waiters.get(taskId)?.size ?? 0;
  }

  /**
   * Resolves once `isFinal()` is true, or `ms` have passed, or `signal` aborts, whichever comes first.
   * `isFinal` reads the record; it is asked after the waiter is registered (so an end between the caller's own
   * read and the registration is not missed), on every announcement of the task, and every few seconds.
   */
  async until(taskId: string, ms: number, signal: AbortSignal, isFinal: () => Promise<boolean>): Promise<void> {
    if (ms <= 0 || signal.aborted || this.stopping) return;
    const until = Date.now() + ms;
    await this.subscribe();
    // Subscribing may take a while (the first poll opens the connection): shutdown or the client may be gone.
    if (signal.aborted || this.stopping || Date.now() >= until) return;
    await new Promise<void>((resolve) => {
      let done = false;
      let checking = false;
      let again = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        clearInterval(recheck);
        signal.removeEventListener("abort", finish);
        const set = this.waiters.get(taskId);
        set?.delete(waiter);
        if (set?.size === 0) this.waiters.delete(taskId);
        resolve();
      };
      // An announcement while a read is in flight (that read may predate the end) asks for one more read.
      const check = () => {
        if (done) return;
        if (checking) {
          again = true;
          return;
        }
        checking = true;
        again = false;
        isFinal()
          .then(
            (final) => {
              if (final) finish();
            },
            () => undefined,
          )
          .finally(() => {
            checking = false;
            if (again) check();
          });
      };
      const deadline = setTimeout(finish, until - Date.now());
      const recheck = setInterval(check, this.recheckMs);
      signal.addEventListener("abort", finish, { once: true });
      const waiter = { check, finish };
      let set = this.waiters.get(taskId);
      if (!set) {
        set = new Set();
        this.waiters.set(taskId, set);
      }
      set.add(waiter);
      check();
    });
  }

  /** Answers every open long poll now (the server is shutting down) and takes no new ones. */
  release(): void {
    this.stopping = true;
    for (const set of [...this.waiters.values()]) for (const w of [...set]) w.finish();
  }

  async close(): Promise<void> {
    this.release();
    if (this.subscriber) await closeConnection(this.subscriber);
    this.subscriber = undefined;
    this.subscribed = undefined;
  }

  /** One subscriber connection, made on first use (servers that never long-poll never open it). */
  private subscribe(): Promise<void> {
    this.subscribed ??= openSubscriber(
      this.redisUrl,
      this.logger,
      "task-end subscriber",
      this.channel,
      (taskId) => {
        for (const w of this.waiters.get(taskId) ?? []) w.check();
      },
      (sub) => {
        this.subscriber = sub;
      },
    ).then(
      () => undefined,
      (err: unknown) => {
        // Not subscribed: waiters still see the end through their periodic re-read; try again next time.
        this.logger.warn({ err }, "could not subscribe to task ends; long polls fall back to re-reading");
        const sub = this.subscriber;
        this.subscriber = undefined;
        this.subscribed = undefined;
        if (sub) void closeConnection(sub);
      },
    );
    return this.subscribed;
  }
}
