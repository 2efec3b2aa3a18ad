// Reads of task logs on behalf of clients (SSE followers, plain-text downloads, the live hub's polls), kept from
// starving everything else: they go over a Redis connection of their own (the API server opens it), at most
// `maxConcurrent` at a time, each at most `maxEntries` entries (entries hold at most 64 KiB of text). A client
// waits its turn in a FIFO queue; since a client has at most one read pending, the queue is bounded by the number
// of open log streams.
import type { LogStore, RawEntry, StoredEntry } from "./log-store.js";

/** Counters of the reads, for diagnostics and tests. */
export interface LogReadStats {
  /** Reads running now, and the most that ever ran at once (never above `maxConcurrent`). */
  readonly active: number;
  readonly peakActive: number;
  /** Reads waiting for a turn. */
  readonly waiting: number;
  /** Reads started since the server started. */
  readonly reads: number;
}

export class LogReader {
  private active = 0;
  private peakActive = 0;
  private reads = 0;
  private readonly queue: (() => void)[] = [];

  constructor(
    private readonly logs: Pick<LogStore, "readAfter" | "readRawAfter">,
    readonly maxConcurrent: number,
    readonly maxEntries: number,
  ) {}

  /** Up to `count` (at most `maxEntries`) entries strictly after `afterId`, read when a slot is free. */
  async readAfter(taskId: string, afterId: string, count: number): Promise<StoredEntry[]> {
    await this.acquire();
    this.reads++;
    try {
      return await this.logs.readAfter(taskId, afterId, Math.min(count, this.maxEntries));
    } finally {
      this.release();
    }
  }

  /** As {@link readAfter}, with each entry's bytes as stored. */
  async readRawAfter(taskId: string, afterId: string, count: number): Promise<RawEntry[]> {
    await this.acquire();
    this.reads++;
    try {
      return await this.logs.readRawAfter(taskId, afterId, Math.min(count, this.maxEntries));
    } finally {
      this.release();
    }
  }

  /**
   * Everything recorded so far, stdout and stderr interleaved in order (system notes left out), as UTF-8 text,
   * read about `budgetBytes` at a time. Pulled: the next read happens only once the consumer has taken what the
   * previous one returned.
   */
  async *readText(taskId: string, budgetBytes: number): AsyncGenerator<string> {
    const sizer = new ReadSizer(budgetBytes, this.maxEntries);
    let after = "0";
    for (;;) {
      const batch = await this.readAfter(taskId, after, sizer.count);
      sizer.observe(batch);
      if (batch.length === 0) return;
      for (const e of batch) {
        if (e.stream === "stdout" || e.stream === "stderr") yield e.text;
      }
      after = (batch[batch.length - 1] as StoredEntry).id;
    }
  }

  stats(): LogReadStats {
    return { active: this.active, peakActive: this.peakActive, waiting: this.queue.length, reads: this.reads };
  }

  private acquire(): Promise<void> {
    if (this.active < this.maxConcurrent) {
      this.take();
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push(resolve));
  }

  private take(): void {
    this.active++;
    if (this.active > this.peakActive) this.peakActive = this.active;
  }

  private release(): void {
    this.active--;
    const next = this.queue.shift();
    if (next) {
      this.take();
      next();
    }
  }
}

/** Largest entry the output sink stores (64 KiB of text). */
const MAX_ENTRY_BYTES = 64 * 1024;
/** What an entry costs besides its text (id, stream, object). */
const ENTRY_OVERHEAD = 64;

/**
 * How many entries to ask for so that one read brings about `budgetBytes`, learned from the entries read so far
 * (entries range from a few bytes to 64 KiB). Until it has seen any, it assumes the largest.
 */
export class ReadSizer {
  private average = MAX_ENTRY_BYTES + ENTRY_OVERHEAD;

  constructor(
    private readonly budgetBytes: number,
    private readonly max: number,
  ) {}

  get count(): number {
    return Math.max(1, Math.min(this.max, Math.round(this.budgetBytes / this.average)));
  }

  observe(entries: readonly (StoredEntry | RawEntry)[]): void {
    if (entries.length === 0) return;
    let bytes = 0;
    for (const e of entries) bytes += ("data" in e ? e.data.length : e.stream === "end" ? 0 : e.text.length) + ENTRY_OVERHEAD;
    this.average = Math.ceil(bytes / entries.length);
  }
}
