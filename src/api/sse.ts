// Server-Sent Events for a task's logs: resumable by entry id, live, bounded per client.
//
// A client that does not take what it was sent costs a bounded amount and nothing more: nothing is read from the
// store for it until everything written to it has been handed to the kernel, and nothing more is written to it
// once MAX_BUFFERED_BYTES wait unsent. So a stalled client holds at most MAX_BUFFERED_BYTES plus one frame of
// unsent data (frames from the live hub are shared by every follower of the task), and one slot of the caps on
// open streams (429 beyond them).
import type { FastifyReply, FastifyRequest } from "fastify";
import type { EndEvent } from "../contract/types.js";
import type { TaskRecord } from "../domain/task.js";
import { invalidInput } from "../errors.js";
import { isLogId, type StoredEntry } from "../logs/log-store.js";
import { FollowStream, MAX_BUFFERED_BYTES, type StreamDeps } from "./follow-stream.js";

const HEARTBEAT_MS = 15_000;
/** How often a follower waiting for output re-checks whether the task has ended. */
const STATUS_CHECK_MS = 1000;

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
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    "x-accel-buffering": "no",
    connection: "keep-alive",
  });
  // Once the server shuts down the stream ends; the client resumes with Last-Event-ID wherever it reconnects.
  const stream = new FollowStream(request, res, deps, record.id, {
    releaseSlot,
    position: () => lastId,
    statusCheckMs: STATUS_CHECK_MS,
    onShutdown: () => {
      stream.finish();
      if (res.writableLength > 0)
        res.destroy(); // a stalled client would never take the rest
      else res.end();
    },
    onFinish: () => clearInterval(heartbeat),
  });
  const { send } = stream;
  send(": berth log stream\n\n");
  // A client that has not taken the last heartbeat is not idle: nothing more piles up for it.
  const heartbeat = setInterval(() => {
    if (!stream.closed && stream.idle) send(": heartbeat\n\n");
  }, HEARTBEAT_MS);

  /**
   * Writes entries in order until the stream ends or this client's unsent bytes pass MAX_BUFFERED_BYTES.
   * "full": some entries were not written; `lastId` is the last one that was, so they are read again later.
   */
  const write = (entries: readonly StoredEntry[]): "more" | "full" | "ended" => {
    for (const e of entries) {
      if (stream.closed) return "ended";
      if (e.stream !== "end" && res.writableLength >= MAX_BUFFERED_BYTES) return "full"; // the end always goes out
      send(frame(e));
      if (e.stream !== "end") lastId = e.id;
      else {
        res.end();
        stream.finish();
        return "ended";
      }
    }
    return "more";
  };
  const drained = () =>
    new Promise<void>((resolve) => {
      if (res.writableLength < MAX_BUFFERED_BYTES || stream.closed) return resolve();
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
      // (or when the hub has seen nothing newer, which the store may still have) from the store. Nothing is read
      // for a client that has not taken what it was sent.
      for (;;) {
        if (!(await stream.ready())) return;
        let batch = stream.cached();
        if (!batch) {
          batch = await deps.reader.readAfter(record.id, lastId, stream.sizer.count);
          stream.sizer.observe(batch);
        }
        if (batch.length === 0) break;
        if (write(batch) === "ended") return;
      }
      const state = await stream.afterCatchUp((afterId) => deps.reader.readAfter(record.id, afterId, 1));
      if (state === "more") continue;
      if (state !== "running") {
        // Finished (or gone) and nothing left: a task whose log stream was removed still ends cleanly.
        const end: EndEvent = { status: state?.status ?? record.status, exitCode: state?.exitCode ?? null };
        write([{ id: lastId, stream: "end", end, timeMs: Date.now() }]);
        return;
      }
      // Live: wait for the hub to deliver, or for this client to fall behind (then catch up again).
      await stream.waitLive((entries) => write(entries) === "more");
      if (stream.closed) return;
      await drained();
    }
  } catch (err) {
    request.log.warn({ err }, "log stream ended with an error");
    res.end();
    stream.finish();
  }
}
