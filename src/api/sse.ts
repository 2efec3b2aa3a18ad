// Server-Sent Events for a task's logs: resumable by entry id, live, bounded per client.
import type { FastifyReply, FastifyRequest } from "fastify";
import { isFinalStatus, type EndEvent } from "../contract/types.js";
import type { TaskRecord } from "../domain/task.js";
import type { LiveHub } from "../logs/live-hub.js";
import { LOG_ID_PATTERN, type LogStore, type StoredEntry } from "../logs/log-store.js";
import type { TaskStore } from "../store/task-store.js";

/** A client whose socket holds more than this unsent is served from the store instead of the live fan-out. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const HEARTBEAT_MS = 15_000;

// JSON-encoding keeps CR/LF out of `data:` lines, so task output can never forge SSE framing.
const frame = (e: StoredEntry): string =>
  e.stream === "end"
    ? `event: end\ndata: ${JSON.stringify(e.end)}\n\n`
    : `id: ${e.id}\nevent: log\ndata: ${JSON.stringify({ stream: e.stream, text: e.text, time: new Date(e.timeMs).toISOString() })}\n\n`;

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
  let detach: (() => void) | undefined;
  let wake: (() => void) | undefined;
  const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), HEARTBEAT_MS);
  const finish = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    detach?.();
    wake?.();
  };
  res.on("close", finish);

  const write = (entries: readonly StoredEntry[]): boolean => {
    for (const e of entries) {
      if (closed) return false;
      res.write(frame(e));
      if (e.stream !== "end") lastId = e.id;
      else {
        res.end();
        finish();
        return false;
      }
    }
    return true;
  };
  const drained = () => new Promise<void>((resolve) => {
    if (res.writableLength < MAX_BUFFERED_BYTES || closed) return resolve();
    const done = () => { res.off("drain", done); res.off("close", done); resolve(); };
    res.on("drain", done);
    res.on("close", done);
  });

  try {
    for (;;) {
      // Catch up from the store at this client's own pace.
      for (;;) {
        if (closed) return;
        const batch = await deps.logs.readAfter(record.id, lastId, 500);
        if (batch.length === 0) break;
        if (!write(batch)) return;
        await drained();
      }
      const current = await deps.store.get(record.id);
      if (!current || isFinalStatus(current.status)) {
        // Finished (or gone) and nothing left: a task whose log stream was removed still ends cleanly.
        const trailing = await deps.logs.readAfter(record.id, lastId, 500);
        if (trailing.length > 0) continue;
        const end: EndEvent = { status: current?.status ?? record.status, exitCode: current?.exitCode ?? null };
        write([{ id: lastId, stream: "end", end, timeMs: Date.now() }]);
        return;
      }
      // Live: wait for the hub to deliver, or for this client to fall behind (then catch up again).
      await new Promise<void>((resolve) => {
        // The task may end between our last read and the hub's first poll: re-check its status now and then.
        const check = setInterval(() => {
          void deps.store.get(record.id).then((r) => { if (!r || isFinalStatus(r.status)) done(); }, () => undefined);
        }, 1000);
        const done = () => { clearInterval(check); wake = undefined; resolve(); };
        wake = done;
        detach = deps.hub.follow(record.id, {
          get lastId() { return lastId; },
          deliver: (entries) => {
            const more = write(entries);
            if (!more || res.writableLength > MAX_BUFFERED_BYTES) {
              done();
              return false;
            }
            return true;
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
