// Following a task's logs over SSE, resuming after dropped connections without gaps or duplicates.
import type { EndEvent, LogEvent } from "../contract/types.js";
import { BerthApiError, UNREACHABLE, isAbortError } from "./errors.js";
import { SseParser } from "./sse.js";
import { sleep } from "./wait.js";

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
export interface FollowOptions {
  /** Start strictly after this entry id (a previous event's `id`); by default from the first entry. */
  after?: string;
  /** Aborting ends the iteration quietly (no end marker). */
  signal?: AbortSignal;
  /** Consecutive failed (re)connections tolerated before giving up. @defaultValue 8 */
  maxRetries?: number;
  /** First reconnection delay; doubles per consecutive failure. @defaultValue 250 */
  retryDelayMs?: number;
  /** Largest reconnection delay. @defaultValue 5000 */
  maxRetryDelayMs?: number;
  /** Called before each reconnection, with the attempt number (from 1) and what went wrong. */
  onReconnect?: (attempt: number, error: unknown) => void;
}

/** Opens one SSE connection resuming after `lastEventId`; throws {@link BerthApiError} when refused. */
export type OpenEventStream = (lastEventId: string | undefined, signal: AbortSignal) => Promise<Response>;

/** A connection that stayed up this long counts as healthy, even if no entry arrived (an idle task). */
const HEALTHY_CONNECTION_MS = 15_000;

/** Retrying helps when nothing answered, the server is overloaded or down for a moment; not for 4xx. */
const isRetriable = (err: unknown): boolean =>
  !(err instanceof BerthApiError) || err.code === UNREACHABLE || err.status === 429 || err.status >= 500;

/**
 * Yields the events of one task's log stream. After a dropped connection it reconnects with `Last-Event-ID`
 * set to the last entry it yielded (the server resumes strictly after it), so nothing is repeated or skipped.
 */
export async function* followEvents(
  taskId: string,
  open: OpenEventStream,
  opts: FollowOptions = {},
): AsyncGenerator<FollowEvent, void, undefined> {
  const { maxRetries = 8, retryDelayMs = 250, maxRetryDelayMs = 5000 } = opts;
  const controller = new AbortController();
  const onAbort = () => controller.abort(opts.signal?.reason);
  if (opts.signal?.aborted) return;
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  let lastId = opts.after;
  let failures = 0;
  let serverRetryMs: number | undefined;
  try {
    for (;;) {
      let problem: unknown;
      const openedAt = Date.now();
      try {
        const res = await open(lastId, controller.signal);
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
                failures = 0;
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
        if (controller.signal.aborted && isAbortError(err)) return;
        if (!isRetriable(err)) throw err;
        problem = err;
      }
      if (controller.signal.aborted) return;
      if (Date.now() - openedAt >= HEALTHY_CONNECTION_MS) failures = 0;
      failures += 1;
      if (failures > maxRetries) {
        if (problem instanceof BerthApiError) throw problem;
        throw new BerthApiError(
          0,
          UNREACHABLE,
          `Lost the log stream of task "${taskId}" and could not resume it after ${maxRetries} retries: ${String((problem as Error)?.message ?? problem)}.`,
          { cause: problem },
        );
      }
      opts.onReconnect?.(failures, problem);
      const delay = Math.min(maxRetryDelayMs, (serverRetryMs ?? retryDelayMs) * 2 ** (failures - 1));
      try {
        await sleep(delay, controller.signal);
      } catch {
        return;
      }
    }
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    controller.abort();
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
