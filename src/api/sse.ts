// Server-Sent Events for a task's logs: resumable by entry id, live, bounded per client.
import type { FastifyReply, FastifyRequest } from "fastify";
import { isFinalStatus, type EndEvent } from "../contract/types.js";
import type { TaskRecord } from "../domain/task.js";
import type { LiveHub } from "../logs/live-hub.js";
import { LOG_ID_PATTERN, type LogStore, type StoredEntry } from "../logs/log-store.js";
import type { TaskStore } from "../store/task-store.js";

/**
 * Most bytes one client's connection may hold unsent. Past it, nothing more is written until the socket drains;
 * the rest stays in the store and is read again at the client's own pace. Bounds memory per (slow) client.
 */
const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Entries per store read while catching up. Entries hold up to 64 Ki characters: at most ~2 MB per read. */
const STORE_BATCH = 32;
const HEARTBEAT_MS = 15_000;

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

export async function streamEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  record: TaskRecord,
  deps: { logs: LogStore; store: TaskStore; hub: LiveHub },
): Promise<void> {
  const q = request.query as { after?: string };
  const header = request.headers["last-event-id"];
  const requested = (Array.isArray(header) ? header[0] : header) ?? q.after ?? "0";
  let lastId = LOG_ID_PATTERN.test(requested) ? requested : "0";

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
    connection: "keep-alive",
  });
  res.write(": berth log stream\n\n");

  let closed = false;
  // Keeps the hub's cache of this task's latest entries while this client catches up.
  const release = deps.hub.open(record.id);
  let detach: (() => void) | undefined;
  let wake: (() => void) | undefined;
  const heartbeat = setInterval(() => {
    if (!closed) res.write(": heartbeat\n\n");
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
    wake?.();
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
      res.write(frame(e));
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

  try {
    for (;;) {
      // Catch up at this client's own pace: from the hub's recent entries when they reach back far enough, else
      // (or when the hub has seen nothing newer, which the store may still have) from the store.
      for (;;) {
        if (closed) return;
        const cached = deps.hub.recentAfter(record.id, lastId, STORE_BATCH);
        const batch = cached?.length ? cached : await deps.logs.readAfter(record.id, lastId, STORE_BATCH);
        if (batch.length === 0) break;
        if (write(batch) === "ended") return;
        await drained();
      }
      const current = await deps.store.get(record.id);
      if (!current || isFinalStatus(current.status)) {
        // Finished (or gone) and nothing left: a task whose log stream was removed still ends cleanly.
        const trailing = await deps.logs.readAfter(record.id, lastId, 1);
        if (trailing.length > 0) continue;
        const end: EndEvent = { status: current?.status ?? record.status, exitCode: current?.exitCode ?? null };
        write([{ id: lastId, stream: "end", end, timeMs: Date.now() }]);
        return;
      }
      // Live: wait for the hub to deliver, or for this client to fall behind (then catch up again).
      await new Promise<void>((resolve) => {
        // The task may end between our last read and the hub's first poll: re-check its status now and then.
        const check = setInterval(() => {
          void deps.store.get(record.id).then(
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
