// Collects a running task's output and writes it to the log store in batches, in order.
// - Never blocks the task: the container's output is always read; what cannot be kept is dropped and counted.
// - Keeps at most `maxBytes` of output; past that, one `system` entry says output was dropped.
// - Output stays bytes all the way to Redis (decoded only when a follower in this process wants it). Every entry ends
//   on a UTF-8 character boundary: an incomplete character at the end of what has arrived is held back until the
//   rest of it comes, so each stored entry decodes on its own exactly as the whole stream would.
// - Batches (at most every `flushMs`) keep Redis round trips low while live followers still see lines quickly.
import type { Logger } from "pino";
import type { LogStream } from "../contract/types.js";
import type { OutputStream } from "./demux.js";
import { AppendError, type LogStore } from "./log-store.js";

/** Largest entry (one SSE event) in bytes; longer runs of output are split at character boundaries. */
const MAX_ENTRY_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

interface PendingEntry {
  stream: LogStream;
  chunks: Buffer[];
  bytes: number;
}

export class OutputSink {
  /** Per stream, the first bytes of a character whose remaining bytes have not arrived yet (at most 3). */
  private readonly carry: Record<OutputStream, Buffer> = { stdout: EMPTY, stderr: EMPTY };
  private pending: PendingEntry[] = [];
  private pendingBytes = 0;
  private keptBytes = 0;
  private readonly keptByStream: Record<OutputStream, number> = { stdout: 0, stderr: 0 };
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

  /** Output kept per stream, and dropped past the limit (for the metrics, once the sink has closed). */
  get bytesByStream(): { stdout: number; stderr: number; dropped: number } {
    return { ...this.keptByStream, dropped: this.droppedBytes };
  }

  /** `chunk` may be a view of a larger buffer; it is only read until the next flush. */
  write(stream: OutputStream, chunk: Buffer): void {
    const room = this.opts.maxBytes - this.keptBytes;
    if (room <= 0) {
      this.droppedBytes += chunk.length;
      return;
    }
    const kept = chunk.length <= room ? chunk : chunk.subarray(0, room);
    this.keptBytes += kept.length;
    this.keptByStream[stream] += kept.length;
    this.pushOutput(stream, kept);
    if (kept.length < chunk.length) {
      this.droppedBytes += chunk.length - kept.length;
      this.endStream(stream);
      this.note(`output passed BERTH_MAX_OUTPUT_BYTES (${this.opts.maxBytes} bytes); further output is dropped, the task goes on`);
    }
  }

  /** A `system` line for followers (berth's own notes, never the task's output). */
  note(text: string): void {
    this.push("system", Buffer.from(text.endsWith("\n") ? text : `${text}\n`));
  }

  /** Flushes everything; call once the container's output has ended. Retries a failing store for a while. */
  async close(): Promise<void> {
    for (const s of ["stdout", "stderr"] as const) this.endStream(s);
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

  /** Keeps whole characters; an incomplete one at the end waits in `carry` for its other bytes. */
  private pushOutput(stream: OutputStream, bytes: Buffer): void {
    const carried = this.carry[stream];
    const buf = carried.length > 0 ? Buffer.concat([carried, bytes]) : bytes;
    const whole = completeLength(buf);
    this.carry[stream] = whole < buf.length ? Buffer.from(buf.subarray(whole)) : EMPTY;
    this.push(stream, buf.subarray(0, whole));
  }

  /** The stream has ended (or been cut off): bytes of an unfinished character are stored as they are. */
  private endStream(stream: OutputStream): void {
    const carried = this.carry[stream];
    this.carry[stream] = EMPTY;
    this.push(stream, carried);
  }

  private push(stream: LogStream, bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.pendingBytes += bytes.length;
    let rest = bytes;
    let last = this.pending[this.pending.length - 1];
    if (last && last.stream === stream && last.bytes < MAX_ENTRY_BYTES) {
      const take = cutAt(rest, MAX_ENTRY_BYTES - last.bytes);
      if (take > 0) {
        last.chunks.push(rest.subarray(0, take));
        last.bytes += take;
        rest = rest.subarray(take);
      }
    }
    while (rest.length > 0) {
      const take = cutAt(rest, MAX_ENTRY_BYTES) || Math.min(rest.length, MAX_ENTRY_BYTES);
      last = { stream, chunks: [rest.subarray(0, take)], bytes: take };
      this.pending.push(last);
      rest = rest.subarray(take);
    }
    if (this.pendingBytes >= 256 * 1024) void this.flush();
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
      this.pendingBytes = 0;
      // One buffer per entry (the pieces may be views of the engine's socket reads, which are not kept).
      const entries = batch.map((e) => ({
        stream: e.stream,
        data: e.chunks.length === 1 ? (e.chunks[0] as Buffer) : Buffer.concat(e.chunks, e.bytes),
      }));
      for (const [i, e] of entries.entries()) (batch[i] as PendingEntry).chunks = [e.data];
      try {
        await this.store.append(this.taskId, entries);
        if (this.writeFailures > 0) {
          this.writeFailures = 0;
          await this.store
            .append(this.taskId, [{ stream: "system", data: "log store was unreachable for a while; output was kept and is complete\n" }])
            .catch(() => undefined);
        }
      } catch (err) {
        // Keep the rest of the batch (bounded by maxBytes) in front of anything newer and try again later; the
        // leading entries Redis confirmed are not sent twice (one whose reply was lost with the connection may be).
        this.writeFailures++;
        if (this.writeFailures === 1) this.opts.logger.warn({ err }, "storing task output failed; will retry");
        if (err instanceof AppendError) batch.splice(0, err.stored);
        this.pending = batch.concat(this.pending);
        this.pendingBytes += batch.reduce((n, e) => n + e.bytes, 0);
        this.timer ??= setTimeout(() => void this.flush(), 500);
      }
    });
    return this.flushing;
  }
}

/** Length of the part of `buf` that holds only whole characters: an unfinished UTF-8 sequence at its end is left out. */
export function completeLength(buf: Buffer): number {
  const n = buf.length;
  for (let i = n - 1; i >= 0 && i >= n - 3; i--) {
    const b = buf[i] as number;
    if ((b & 0xc0) === 0x80) continue; // continuation byte: look further back for the lead byte
    const need = b >= 0xf8 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return n - i < need ? i : n;
  }
  return n;
}

/** Where to cut `buf` to take at most `max` bytes without splitting a character (0: not even one fits). */
function cutAt(buf: Buffer, max: number): number {
  if (buf.length <= max) return buf.length;
  for (let i = max; i >= 0 && i >= max - 3; i--) {
    if (((buf[i] as number) & 0xc0) !== 0x80) return i; // buf[i] starts a character
  }
  return max; // no character start nearby: not UTF-8 here, any cut is as good
}
