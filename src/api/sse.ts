// Server-Sent Events for a task's logs: resumable by entry id, live, bounded per client.
//
// A client that does not take what it was sent costs a bounded amount and nothing more: nothing is read from the
// store for it until everything written to it has been handed to the kernel, and nothing more is written to it
// once MAX_BUFFERED_BYTES wait unsent. So a stalled client holds at most MAX_BUFFERED_BYTES plus one frame of
// unsent data (frames from the live hub are shared by every follower of the task), and one slot of the caps on
// open streams (429 beyond them).
import type { FastifyReply, FastifyRequest } from "fastify";
import { isFinalStatus, type EndEvent } from "../contract/types.js";
import type { TaskRecord } from "../domain/task.js";
import { invalidInput } from "../errors.js";
import type { LiveHub } from "../logs/live-hub.js";
import { ReadSizer, type LogReader } from "../logs/log-reader.js";
import { isLogId, type StoredEntry } from "../logs/log-store.js";
import type { TaskStore } from "../store/task-store.js";
import type { LogStreamSlots } from "./log-streams.js";

/**
 * Most bytes one client's connection may hold unsent. Past it, nothing more is written until the socket drains;
 * the rest stays in the store and is read again at the client's own pace. Bounds memory per (slow) client.
 */
export const MAX_BUFFERED_BYTES = 128 * 1024;
/** Entries taken from the hub's cache of recent entries at a time (shared objects: no copy per client). */
const CACHE_BATCH = 32;
const HEARTBEAT_MS = 15_000;

export interface StreamDeps {
  readonly reader: LogReader;
  readonly store: TaskStore;
  readonly hub: LiveHub;
  readonly slots: LogStreamSlots;
}

// JSON-encoding keeps CR/LF out of `data:` lines, so task output can never forge SSE framing.
// A frame is written straight into one buffer: the (possibly 64 KiB) JSON text is encoded once and never
// concatenated into a bigger string first.
function render(e: StoredEntry): Buffer {
  if (e.stream === "end") return Buffer.from(`event: end\ndata: ${JSON.stringify(e.end)}\n\n`);
  const head = `id: ${e.id}\nevent: log\ndata: {"stream":${JSON.stringify(e.stream)},"text":`;
  const text = JSON.stringify(e.text);
  const tail = `,"time":"${new Date(e.timeMs).toISOString()}"}\n\n`;
  const headBytes = Buffer.byteLength(head);
  const textBytes = Buffer.byteLength(text);
  const out = Buffer.allocUnsafe(headBytes + textBytes + Buffer.byteLength(tail));
  out.write(head, 0);
  out.write(text, headBytes);
  out.write(tail, headBytes + textBytes);
  return out;
}

// The live hub hands the same entry objects to every follower: each frame is rendered and UTF-8 encoded once,
// not once per follower.
const rendered = new WeakMap<StoredEntry, Buffer>();
const frame = (e: StoredEntry): Buffer => {
  let f = rendered.get(e);
  if (f === undefined) {
    f = render(e);
    rendered.set(e, f);
  }
  return f;
};

export function wantsEventStream(request: FastifyRequest): boolean {
  return (request.headers.accept ?? "").includes("text/event-stream");
}

/** Where to resume: `Last-Event-ID` (or `?after=`), "0" for the start. An id Redis would refuse is a 400. */
export function resumeId(request: FastifyRequest): string {
  const header = request.headers["last-event-id"];
  const fromHeader = Array.isArray(header) ? header[0] : header;
  const fromQuery = (request.query as { after?: string }).after;
  const given = fromHeader || fromQuery;
  if (!given) return "0";
  if (!isLogId(given)) {
    const field = fromHeader ? "Last-Event-ID" : "after";
    throw invalidInput(
      `Invalid ${field}: must be the id of an event of this stream ("<ms>-<seq>", two numbers below 2^64), or left out to start from the beginning.`,
      { field },
    );
  }
  return given;
}

export async function streamEvents(request: FastifyRequest, reply: FastifyReply, record: TaskRecord, deps: StreamDeps): Promise<void> {
  let lastId = resumeId(request);
  const releaseSlot = deps.slots.acquire(record.tenant); // 429 when over a cap, before anything is sent

  reply.hijack();
  const res = reply.raw;
  let closed = false;
  // Writes whose bytes the kernel has not taken yet, and who waits for there to be none.
  let unflushed = 0;
  let flushWaiters: (() => void)[] = [];
  const wakeFlushWaiters = () => {
    const waiters = flushWaiters;
    flushWaiters = [];
    for (const w of waiters) w();
  };
  const written = () => {
    unflushed--;
    if (unflushed === 0) wakeFlushWaiters();
  };
  const send = (chunk: Buffer | string) => {
    unflushed++;
    res.write(chunk, written);
  };
  /** Resolves once everything written so far has left this process (or the client is gone). */
  const flushed = () => (unflushed === 0 || closed ? Promise.resolve() : new Promise<void>((resolve) => flushWaiters.push(resolve)));

  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
    connection: "keep-alive",
  });
  send(": berth log stream\n\n");

  // Keeps the hub's cache of this task's latest entries while this client catches up.
  const release = deps.hub.open(record.id);
  let detach: (() => void) | undefined;
  let wake: (() => void) | undefined;
  // A client that has not taken the last heartbeat is not idle: nothing more piles up for it.
  const heartbeat = setInterval(() => {
    if (!closed && unflushed === 0) send(": heartbeat\n\n");
  }, HEARTBEAT_MS);
  // A follower must not hold up shutdown: once the HTTP server stops listening (close() was called, which waits
  // for open connections), end the stream; the client resumes with Last-Event-ID wherever it reconnects.
  const http = request.server.server;
  const listening = http.listening; // not listening at all (inject): nothing to watch
  const shutdownWatch = setInterval(() => {
    if (!listening || http.listening || closed) return;
    finish();
    if (res.writableLength > 0)
      res.destroy(); // a stalled client would never take the rest
    else res.end();
  }, 1000);
  const finish = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    clearInterval(shutdownWatch);
    detach?.();
    release();
    releaseSlot();
    wake?.();
    wakeFlushWaiters();
  };
  res.on("close", finish);

  /**
   * Writes entries in order until the stream ends or this client's unsent bytes pass MAX_BUFFERED_BYTES.
   * "full": some entries were not written; `lastId` is the last one that was, so they are read again later.
   */
  const write = (entries: readonly StoredEntry[]): "more" | "full" | "ended" => {
    for (const e of entries) {
      if (closed) return "ended";
      if (e.stream !== "end" && res.writableLength >= MAX_BUFFERED_BYTES) return "full"; // the end always goes out
      send(frame(e));
      if (e.stream !== "end") lastId = e.id;
      else {
        res.end();
        finish();
        return "ended";
      }
    }
    return "more";
  };
  const drained = () =>
    new Promise<void>((resolve) => {
      if (res.writableLength < MAX_BUFFERED_BYTES || closed) return resolve();
      const done = () => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.on("drain", done);
      res.on("close", done);
    });

  const sizer = new ReadSizer(MAX_BUFFERED_BYTES, deps.reader.maxEntries);
  try {
    for (;;) {
      // Catch up at this client's own pace: from the hub's recent entries when they reach back far enough, else
      // (or when the hub has seen nothing newer, which the store may still have) from the store. Nothing is read
      // for a client that has not taken what it was sent.
      for (;;) {
        await flushed();
        if (closed) return;
        const cached = deps.hub.recentAfter(record.id, lastId, CACHE_BATCH);
        let batch: StoredEntry[];
        if (cached?.length) batch = cached;
        else {
          batch = await deps.reader.readAfter(record.id, lastId, sizer.count);
          sizer.observe(batch);
        }
        if (batch.length === 0) break;
        if (write(batch) === "ended") return;
      }
      const current = await deps.store.getStatus(record.id);
      if (!current || isFinalStatus(current.status)) {
        // Finished (or gone) and nothing left: a task whose log stream was removed still ends cleanly.
        const trailing = await deps.reader.readAfter(record.id, lastId, 1);
        if (trailing.length > 0) continue;
        const end: EndEvent = { status: current?.status ?? record.status, exitCode: current?.exitCode ?? null };
        write([{ id: lastId, stream: "end", end, timeMs: Date.now() }]);
        return;
      }
      // Live: wait for the hub to deliver, or for this client to fall behind (then catch up again).
      await new Promise<void>((resolve) => {
        // The task may end between our last read and the hub's first poll: re-check its status now and then.
        const check = setInterval(() => {
          void deps.store.getStatus(record.id).then(
            (r) => {
              if (!r || isFinalStatus(r.status)) done();
            },
            () => undefined,
          );
        }, 1000);
        const done = () => {
          clearInterval(check);
          wake = undefined;
          resolve();
        };
        wake = done;
        if (closed) return done();
        detach = deps.hub.follow(record.id, {
          get lastId() {
            return lastId;
          },
          deliver: (entries) => {
            // Falling behind (or ending) leaves the fan-out: the rest is read from the store at this client's pace.
            if (write(entries) === "more" && res.writableLength < MAX_BUFFERED_BYTES) return true;
            done();
            return false;
          },
        });
      });
      detach?.();
      detach = undefined;
      if (closed) return;
      await drained();
    }
  } catch (err) {
    request.log.warn({ err }, "log stream ended with an error");
    res.end();
    finish();
  }
}
