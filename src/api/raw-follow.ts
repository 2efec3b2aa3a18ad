// A task's output as raw bytes (API.md §5 "Following output without SSE"): `GET /v1/tasks/:id/logs?follow=true`
// streams what the task prints, exactly as printed, and ends when the task does; `text/plain` (stdout and stderr
// interleaved) or, asked for with `Accept: application/vnd.docker.multiplexed-stream`, in Docker's attach framing
// (8-byte header: stream 1 or 2, three zero bytes, big-endian length). `?stream=stdout|stderr` selects one stream,
// `?offset=N` starts after the first N bytes of the selection. Without `follow=true` it ends once it has sent
// what was recorded so far.
//
// The response ends normally only when the task has ended and everything was sent: on any other ending (the
// server shutting down, an error) the connection is cut, so a client can tell the two apart and resume with the
// offset it has reached. No heartbeat can be sent in raw bytes; an idle follower just waits.
//
// Bounded per client exactly as SSE is (sse.ts): a slot of the caps on open log streams, nothing read for a client
// that has not taken what it was sent, at most MAX_BUFFERED_BYTES written ahead, reads through the LogReader.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { TaskRecord } from "../domain/task.js";
import { invalidInput } from "../errors.js";
import { type RawEntry, type StoredEntry, storedBytes } from "../logs/log-store.js";
import { FollowStream, MAX_BUFFERED_BYTES, type StreamDeps } from "./follow-stream.js";

export const MULTIPLEXED = "application/vnd.docker.multiplexed-stream";
/** How often a follower waiting for output re-checks whether the task has ended. */
const STATUS_CHECK_MS = 1000;

export interface RawQuery {
  readonly follow: boolean;
  readonly stream: "stdout" | "stderr" | null;
  readonly offset: number;
}

/**
 * The raw form's parameters, or null when the request asks for none of them nor for Docker's framing (then it gets
 * the plain text log). 400 if invalid.
 */
export function rawQuery(request: FastifyRequest): RawQuery | null {
  const q = request.query as { follow?: unknown; stream?: unknown; offset?: unknown };
  if (q.follow === undefined && q.stream === undefined && q.offset === undefined && !wantsMultiplexed(request)) return null;
  if (q.follow !== undefined && q.follow !== "true" && q.follow !== "false") {
    throw invalidInput('Invalid follow: must be "true" or "false".', { field: "follow" });
  }
  if (q.stream !== undefined && q.stream !== "stdout" && q.stream !== "stderr") {
    throw invalidInput('Invalid stream: must be "stdout" or "stderr" (leave it out for both, interleaved).', { field: "stream" });
  }
  const offset = q.offset === undefined ? 0 : Number(q.offset);
  if (q.offset !== undefined && (typeof q.offset !== "string" || !/^\d{1,15}$/.test(q.offset))) {
    throw invalidInput("Invalid offset: must be a whole number of bytes, 0 or more.", { field: "offset" });
  }
  return { follow: q.follow === "true", stream: (q.stream as RawQuery["stream"]) ?? null, offset };
}

export const wantsMultiplexed = (request: FastifyRequest): boolean => (request.headers.accept ?? "").includes(MULTIPLEXED);

/**
 * An entry's bytes: as stored when this process appended it; else encoded from its text, once however many followers
 * it goes to (the live hub shares entry objects). Null when the text cannot say what the bytes were: a U+FFFD may
 * stand for bytes that were not UTF-8 (then the entry is read from the store as stored).
 */
const encoded = new WeakMap<StoredEntry, Buffer>();
const bytesOf = (e: StoredEntry & { text: string }): Buffer | null => {
  const stored = storedBytes(e);
  if (stored) return stored;
  let b = encoded.get(e);
  if (b === undefined) {
    if (e.text.includes("\uFFFD")) return null;
    b = Buffer.from(e.text, "utf8");
    encoded.set(e, b);
  }
  return b;
};

/** Docker's frame header for `bytes` of `stream`. */
function frameHeader(stream: "stdout" | "stderr", bytes: number): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream === "stdout" ? 1 : 2;
  h.writeUInt32BE(bytes, 4);
  return h;
}

export async function streamRaw(
  request: FastifyRequest,
  reply: FastifyReply,
  record: TaskRecord,
  query: RawQuery,
  deps: StreamDeps,
): Promise<void> {
  const framed = wantsMultiplexed(request);
  const releaseSlot = deps.slots.acquire(record.tenant); // 429 when over a cap, before anything is sent

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": framed ? MULTIPLEXED : "text/plain; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
    "x-content-type-options": "nosniff",
  });
  res.flushHeaders();

  /** Cuts the connection: the client sees the stream broken off (not ended) and resumes from its offset. */
  const cut = () => {
    stream.finish();
    res.destroy();
  };
  let lastId = "0";
  // A follower must not hold up shutdown: once the HTTP server stops listening, cut the stream.
  const stream = new FollowStream(request, res, deps, record.id, {
    releaseSlot,
    position: () => lastId,
    statusCheckMs: STATUS_CHECK_MS,
    onShutdown: cut,
  });
  const { send } = stream;

  let skip = query.offset;
  const emit = (stream: string, data: Buffer) => {
    if (stream !== "stdout" && stream !== "stderr") return; // berth's own notes are not output
    if (query.stream !== null && stream !== query.stream) return;
    let bytes = data;
    if (skip > 0) {
      if (bytes.length <= skip) {
        skip -= bytes.length;
        return;
      }
      bytes = bytes.subarray(skip);
      skip = 0;
    }
    if (bytes.length === 0) return;
    if (framed) send(frameHeader(stream, bytes.length));
    send(bytes);
  };
  const end = () => {
    stream.finish();
    res.end();
  };

  /**
   * Writes entries from the hub in order. "inexact": an entry's bytes are not known exactly ({@link bytesOf}); it and
   * what follows are read from the store.
   */
  const writeDecoded = (entries: readonly StoredEntry[]): "more" | "full" | "ended" | "inexact" => {
    for (const e of entries) {
      if (stream.closed) return "ended";
      if (e.stream === "end") {
        end();
        return "ended";
      }
      if (res.writableLength >= MAX_BUFFERED_BYTES) return "full";
      const bytes = bytesOf(e);
      if (bytes === null) return "inexact";
      emit(e.stream, bytes);
      lastId = e.id;
    }
    return "more";
  };
  const writeRaw = (entries: readonly RawEntry[]): "more" | "ended" => {
    for (const e of entries) {
      if (stream.closed) return "ended";
      if (e.stream === "end") {
        end();
        return "ended";
      }
      emit(e.stream, e.data);
      lastId = e.id;
    }
    return "more";
  };

  try {
    for (;;) {
      // Catch up at this client's own pace (nothing is read until it has taken what it was sent).
      for (;;) {
        if (!(await stream.ready())) return;
        const cached = stream.cached();
        const fromCache = cached ? writeDecoded(cached) : null;
        if (fromCache === "ended") return;
        if (fromCache === "more" || fromCache === "full") continue;
        const batch = await deps.reader.readRawAfter(record.id, lastId, stream.sizer.count);
        stream.sizer.observe(batch);
        if (batch.length === 0) break;
        if (writeRaw(batch) === "ended") return;
      }
      const state = await stream.afterCatchUp((afterId) => deps.reader.readRawAfter(record.id, afterId, 1));
      if (state === "more") continue;
      // Finished with nothing left (its log stream removed, or never ended by a lost worker): the end all the same.
      // Still running: the end of what was recorded so far, unless asked to follow.
      if (state !== "running" || !query.follow) {
        end();
        return;
      }
      // Live: wait for the hub to deliver, or for the task to end.
      await stream.waitLive((entries) => writeDecoded(entries) === "more");
      if (stream.closed) return;
    }
  } catch (err) {
    request.log.warn({ err }, "raw log stream ended with an error");
    cut();
  }
}
