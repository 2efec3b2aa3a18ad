// Following a task's logs over SSE, resuming after dropped connections without gaps or duplicates.
import type { EndEvent, LogEvent } from "../contract/types.js";
import { BerthApiError } from "./errors.js";
import { SseParser } from "./sse.js";
import { type ReconnectOptions, Reconnects } from "./reconnect.js";

/** A log entry of the task: `stream` is `stdout`, `stderr` or `system` (notes from berth itself). */
export interface FollowLogEvent extends LogEvent {
  type: "log";
  /** The entry's id; pass it as `after` to resume strictly after it. */
  id: string;
}

/** The last event of a stream: the task's final status and exit code. */
export interface FollowEndEvent extends EndEvent {
  type: "end";
}

/** What {@link BerthClient.follow} yields: log entries, then exactly one end marker. */
export type FollowEvent = FollowLogEvent | FollowEndEvent;

/** Options of {@link BerthClient.follow}. */
export interface FollowOptions extends ReconnectOptions {
  /** Start strictly after this entry id (a previous event's `id`); by default from the first entry. */
  after?: string;
  /** Aborting ends the iteration quietly (no end marker). */
  signal?: AbortSignal;
}

/** Opens one SSE connection resuming after `lastEventId`; throws {@link BerthApiError} when refused. */
export type OpenEventStream = (lastEventId: string | undefined, signal: AbortSignal) => Promise<Response>;

/**
 * Yields the events of one task's log stream. After a dropped connection it reconnects with `Last-Event-ID`
 * set to the last entry it yielded (the server resumes strictly after it), so nothing is repeated or skipped.
 */
export async function* followEvents(
  taskId: string,
  open: OpenEventStream,
  opts: FollowOptions = {},
): AsyncGenerator<FollowEvent, void, undefined> {
  if (opts.signal?.aborted) return;
  const reconnects = new Reconnects("log stream", taskId, opts);
  let lastId = opts.after;
  let serverRetryMs: number | undefined;
  try {
    for (;;) {
      let problem: unknown;
      const openedAt = Date.now();
      try {
        const res = await open(lastId, reconnects.signal);
        const parser = new SseParser(lastId ?? "");
        const body = res.body;
        if (!body) throw new BerthApiError(0, "invalid_response", `The log stream of task "${taskId}" came without a body.`);
        const reader = body.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            let chunk: Awaited<ReturnType<typeof reader.read>>;
            try {
              chunk = await reader.read();
            } catch (err) {
              problem = err;
              break;
            }
            const text = chunk.done ? decoder.decode() : decoder.decode(chunk.value, { stream: true });
            for (const m of parser.push(text)) {
              if (m.event === "log") {
                const entry = parseData<LogEvent>(m.data, taskId);
                lastId = m.id;
                reconnects.progressed();
                yield { type: "log", id: m.id, stream: entry.stream, text: entry.text, time: entry.time };
              } else if (m.event === "end") {
                const end = parseData<EndEvent>(m.data, taskId);
                yield { type: "end", status: end.status, exitCode: end.exitCode };
                return;
              }
            }
            serverRetryMs = parser.retryMs ?? serverRetryMs;
            if (chunk.done) {
              problem = new Error("the server closed the stream before the task's end event");
              break;
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
      if (!(await reconnects.next(problem, openedAt, serverRetryMs))) return;
    }
  } finally {
    reconnects.close();
  }
}

function parseData<T>(data: string, taskId: string): T {
  try {
    return JSON.parse(data) as T;
  } catch (err) {
    throw new BerthApiError(
      0,
      "invalid_response",
      `The log stream of task "${taskId}" carried an event that is not JSON: ${data.slice(0, 100)}`,
      { cause: err },
    );
  }
}
