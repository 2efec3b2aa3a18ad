// Collects a running task's output and writes it to the log store in batches, in order.
// - Never blocks the task: the container's output is always read; what cannot be kept is dropped and counted.
// - Keeps at most `maxBytes` of output; past that, one `system` entry says output was dropped.
// - One StringDecoder per stream, so a UTF-8 character split across Docker frames stays whole.
// - Batches (at most every `flushMs`) keep Redis round trips low while live followers still see lines quickly.
import { StringDecoder } from "node:string_decoder";
import type { Logger } from "pino";
import type { LogStream } from "../contract/types.js";
import type { OutputStream } from "./demux.js";
import type { LogStore } from "./log-store.js";

/** Largest text of one log entry (one SSE event); longer runs of output are split. */
const MAX_ENTRY_CHARS = 64 * 1024;

export class OutputSink {
  private readonly decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
  private pending: { stream: LogStream; text: string }[] = [];
  private pendingChars = 0;
  private keptBytes = 0;
  private droppedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private writeFailures = 0;

  constructor(
    private readonly store: LogStore,
    private readonly taskId: string,
    private readonly opts: { maxBytes: number; flushMs?: number; logger: Logger },
  ) {}

  get truncated(): boolean {
    return this.droppedBytes > 0;
  }

  get bytesKept(): number {
    return this.keptBytes;
  }

  write(stream: OutputStream, chunk: Buffer): void {
    const room = this.opts.maxBytes - this.keptBytes;
    if (room <= 0) {
      this.droppedBytes += chunk.length;
      return;
    }
    const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.keptBytes += kept.length;
    this.push(stream, this.decoders[stream].write(kept));
    if (kept.length < chunk.length) {
      this.droppedBytes += chunk.length - kept.length;
      this.push(stream, this.decoders[stream].end());
      this.note(`output passed BERTH_MAX_OUTPUT_BYTES (${this.opts.maxBytes} bytes); further output is dropped, the task goes on`);
    }
  }

  /** A `system` line for followers (berth's own notes, never the task's output). */
  note(text: string): void {
    this.push("system", text.endsWith("\n") ? text : `${text}\n`);
  }

  /** Flushes everything; call once the container's output has ended. Retries a failing store for a while. */
  async close(): Promise<void> {
    for (const s of ["stdout", "stderr"] as const) this.push(s, this.decoders[s].end());
    if (this.droppedBytes > 0) this.note(`${this.droppedBytes} bytes of output were dropped (limit ${this.opts.maxBytes} bytes)`);
    clearTimeout(this.timer);
    this.timer = undefined;
    for (let attempt = 0; ; attempt++) {
      await this.flush();
      if (this.pending.length === 0) return;
      if (attempt >= 20) {
        this.opts.logger.error({ entries: this.pending.length }, "task output could not be stored; dropping it");
        return;
      }
      await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 2000)));
    }
  }

  private push(stream: LogStream, text: string): void {
    if (text.length === 0) return;
    const last = this.pending[this.pending.length - 1];
    if (last && last.stream === stream && last.text.length + text.length <= MAX_ENTRY_CHARS) {
      last.text += text;
    } else {
      for (let i = 0; i < text.length; i += MAX_ENTRY_CHARS) {
        this.pending.push({ stream, text: text.slice(i, i + MAX_ENTRY_CHARS) });
      }
    }
    this.pendingChars += text.length;
    if (this.pendingChars >= 256 * 1024) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.opts.flushMs ?? 20);
  }

  /** Writes are chained, so entries reach the store in the order they were produced. */
  private flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(async () => {
      if (this.pending.length === 0) return;
      const batch = this.pending;
      this.pending = [];
      this.pendingChars = 0;
      try {
        await this.store.append(this.taskId, batch);
        if (this.writeFailures > 0) {
          this.writeFailures = 0;
          await this.store.append(this.taskId, [{ stream: "system", text: "log store was unreachable for a while; output was kept and is complete\n" }]).catch(() => undefined);
        }
      } catch (err) {
        // Keep the batch (bounded by maxBytes) in front of anything newer and try again later.
        this.writeFailures++;
        if (this.writeFailures === 1) this.opts.logger.warn({ err }, "storing task output failed; will retry");
        this.pending = batch.concat(this.pending);
        this.pendingChars += batch.reduce((n, e) => n + e.text.length, 0);
        this.timer ??= setTimeout(() => void this.flush(), 500);
      }
    });
    return this.flushing;
  }
}
