// Following a task's raw output (`GET /v1/tasks/:id/logs?follow=true`, API.md §5): the bytes as printed, in Docker's
// multiplexed framing so stdout and stderr stay apart, resumed by byte offset after a dropped connection. The server
// ends the response normally only once the task has ended and everything was sent; any other ending (a cut
// connection, a server shutting down) is resumed from the offset reached, so nothing is repeated or skipped.
import type { EndEvent, TaskView } from "../contract/types.js";
import { BerthApiError } from "./errors.js";
import { type ReconnectOptions, Reconnects } from "./reconnect.js";

export const MULTIPLEXED = "application/vnd.docker.multiplexed-stream";

/** Bytes the task printed, in order. */
export interface OutputChunk {
  type: "output";
  stream: "stdout" | "stderr";
  data: Uint8Array;
  /** Bytes of the selection before this chunk; `offset + data.length` resumes right after it. */
  offset: number;
}

/** The last event: the task's final status and exit code, and its view at that moment. */
export interface OutputEnd extends EndEvent {
  type: "end";
  task: TaskView;
}

/** What {@link BerthClient.followOutput} yields: output chunks, then exactly one end marker. */
export type OutputEvent = OutputChunk | OutputEnd;

/** Options of {@link BerthClient.followOutput}. */
export interface FollowOutputOptions extends ReconnectOptions {
  /** Only this stream; by default both, interleaved in order. */
  stream?: "stdout" | "stderr";
  /** Start after this many bytes of the selection (a previous chunk's `offset + data.length`). @defaultValue 0 */
  offset?: number;
  /** Aborting ends the iteration quietly (no end marker). */
  signal?: AbortSignal;
}

/** Opens one raw stream starting after `offset` bytes of the selection; throws {@link BerthApiError} when refused. */
export type OpenOutputStream = (offset: number, signal: AbortSignal) => Promise<Response>;
/** The task's view with its final status, once the stream ended normally. */
export type FinalView = (signal: AbortSignal) => Promise<TaskView>;

/**
 * Docker's attach framing (8-byte header: stream 1 or 2, three zero bytes, big-endian length) → payload pieces.
 * A frame split across chunks comes out as several pieces of the same stream, in order; payloads are not copied.
 */
export class FrameParser {
  readonly #header = new Uint8Array(8);
  #headerBytes = 0;
  #remaining = 0;
  #stream: "stdout" | "stderr" = "stdout";

  /** Payload pieces of `chunk`; throws on a header that is not Docker's. */
  push(chunk: Uint8Array): { stream: "stdout" | "stderr"; data: Uint8Array }[] {
    const out: { stream: "stdout" | "stderr"; data: Uint8Array }[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (this.#remaining > 0) {
        const end = Math.min(chunk.length, at + this.#remaining);
        this.#remaining -= end - at;
        out.push({ stream: this.#stream, data: chunk.subarray(at, end) });
        at = end;
        continue;
      }
      const take = Math.min(8 - this.#headerBytes, chunk.length - at);
      this.#header.set(chunk.subarray(at, at + take), this.#headerBytes);
      this.#headerBytes += take;
      at += take;
      if (this.#headerBytes < 8) break;
      this.#headerBytes = 0;
      const h = this.#header;
      if ((h[0] !== 1 && h[0] !== 2) || h[1] !== 0 || h[2] !== 0 || h[3] !== 0) {
        throw new Error(`not a multiplexed-stream frame header: ${Array.from(h).join(",")}`);
      }
      this.#stream = h[0] === 1 ? "stdout" : "stderr";
      this.#remaining = new DataView(h.buffer, h.byteOffset, 8).getUint32(4);
    }
    return out;
  }

  /** True between frames (nothing of a frame is still expected). */
  get atBoundary(): boolean {
    return this.#headerBytes === 0 && this.#remaining === 0;
  }
}

/**
 * Yields the task's output as printed, then its end. After a dropped connection it reconnects with the byte offset
 * it has reached. `final` is asked once the server has ended the stream (the task has ended by then).
 */
export async function* followOutput(
  taskId: string,
  open: OpenOutputStream,
  final: FinalView,
  opts: FollowOutputOptions = {},
): AsyncGenerator<OutputEvent, void, undefined> {
  if (opts.signal?.aborted) return;
  const reconnects = new Reconnects("output stream", taskId, opts);
  let offset = opts.offset ?? 0;
  try {
    for (;;) {
      let problem: unknown;
      const openedAt = Date.now();
      try {
        const res = await open(offset, reconnects.signal);
        const body = res.body;
        if (!body) throw new BerthApiError(0, "invalid_response", `The output stream of task "${taskId}" came without a body.`);
        const parser = new FrameParser();
        const reader = body.getReader();
        try {
          for (;;) {
            let chunk: Awaited<ReturnType<typeof reader.read>>;
            try {
              chunk = await reader.read();
            } catch (err) {
              problem = err;
              break;
            }
            if (chunk.done) {
              if (!parser.atBoundary) {
                problem = new Error("the output stream ended inside a frame");
                break;
              }
              const task = await final(reconnects.signal);
              yield { type: "end", status: task.status, exitCode: task.exitCode, task };
              return;
            }
            let pieces: ReturnType<FrameParser["push"]>;
            try {
              pieces = parser.push(chunk.value);
            } catch (err) {
              throw new BerthApiError(
                0,
                "invalid_response",
                `The output stream of task "${taskId}" is garbled: ${(err as Error).message}.`,
                {
                  cause: err,
                },
              );
            }
            for (const p of pieces) {
              if (p.data.length === 0) continue;
              const at = offset;
              offset += p.data.length;
              reconnects.progressed();
              yield { type: "output", stream: p.stream, data: p.data, offset: at };
            }
          }
        } finally {
          // Also runs when the consumer stops early: release the connection.
          reader.cancel().catch(() => undefined);
        }
      } catch (err) {
        if (reconnects.endsOn(err)) return;
        problem = err;
      }
      if (!(await reconnects.next(problem, openedAt))) return;
    }
  } finally {
    reconnects.close();
  }
}
