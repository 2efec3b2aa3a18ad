// Server-Sent Events for tests: collects a stream's events and comments, parsed by the SDK's own parser
// (src/client/sse.ts, WHATWG HTML "event stream interpretation"), so tests and clients read streams alike.
import http from "node:http";
import { SseParser, type SseMessage } from "../../src/client/sse.js";

/** One event: `event` ("message" when absent), `data`, and `id`, the stream's last event id when it was dispatched. */
export type SseEvent = SseMessage;

export type SseItem = { readonly kind: "event"; readonly event: SseEvent } | { readonly kind: "comment"; readonly text: string };

/** Feed it decoded text in any chunking; it returns the items (events and comments) each piece completed. */
function itemParser(): (text: string) => SseItem[] {
  let items: SseItem[] = [];
  const parser = new SseParser("", { onComment: (text) => items.push({ kind: "comment", text }) });
  return (text) => {
    // Comments come first among the items of one piece: tests only count them.
    const events = parser.push(text);
    const out = items;
    items = [];
    for (const event of events) out.push({ kind: "event", event });
    return out;
  };
}

/** A log event's payload (API.md §3). */
export interface LogData {
  stream: "stdout" | "stderr" | "system";
  text: string;
  time: string;
}

export interface SseResult<H = Headers> {
  readonly status: number;
  readonly headers: H;
  readonly events: SseEvent[];
  readonly comments: string[];
}

export const SSE_HEADERS = { accept: "text/event-stream" };

/**
 * Opens an SSE stream with fetch and yields items as they arrive. Stop early by breaking out of the loop or
 * aborting `signal`.
 */
export async function openSse(
  url: string,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<{ status: number; headers: Headers; items: AsyncGenerator<SseItem> }> {
  const res = await fetch(url, { headers: { ...SSE_HEADERS, ...headers }, signal });
  const body = res.body;
  async function* items(): AsyncGenerator<SseItem> {
    if (!body) return;
    const parse = itemParser();
    const decoder = new TextDecoder("utf-8");
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        yield* parse(decoder.decode(value, { stream: true }));
      }
      yield* parse(decoder.decode()); // an event cut off without its blank line is dropped, as the spec says
    } finally {
      await reader.cancel().catch(() => undefined);
    }
  }
  return { status: res.status, headers: res.headers, items: items() };
}

/** Reads a whole SSE stream (until the server closes it) and returns every event and comment. */
export async function collectSse(url: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<SseResult> {
  const { status, headers: h, items } = await openSse(url, headers, signal);
  const events: SseEvent[] = [];
  const comments: string[] = [];
  for await (const item of items) {
    if (item.kind === "event") events.push(item.event);
    else comments.push(item.text);
  }
  return { status, headers: h, events, comments };
}

/** The `log` events' payloads, in order. */
export const logData = (events: readonly SseEvent[]): (LogData & { id: string })[] =>
  events.filter((e) => e.event === "log").map((e) => ({ ...(JSON.parse(e.data) as LogData), id: e.id }));

/** Concatenated text of one stream's log events. */
export const streamText = (events: readonly SseEvent[], stream: LogData["stream"]): string =>
  logData(events)
    .filter((d) => d.stream === stream)
    .map((d) => d.text)
    .join("");

export const endEvents = (events: readonly SseEvent[]) => events.filter((e) => e.event === "end");

/**
 * An SSE request over node:http whose response is NOT read until `resume()` is called: the socket stays
 * unread, so the server sees a stalled client. `done` resolves with everything once the server ends the stream.
 */
export function stalledSse(
  url: string,
  headers: Record<string, string> = {},
): Promise<{
  status: number;
  headers: http.IncomingHttpHeaders;
  resume(): void;
  done: Promise<SseResult<http.IncomingHttpHeaders>>;
  destroy(): void;
}> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers: { ...SSE_HEADERS, ...headers } }, (res) => {
      res.pause();
      const parse = itemParser();
      const events: SseEvent[] = [];
      const comments: string[] = [];
      const take = (items: SseItem[]) => {
        for (const i of items) {
          if (i.kind === "event") events.push(i.event);
          else comments.push(i.text);
        }
      };
      const done = new Promise<SseResult<http.IncomingHttpHeaders>>((ok, fail) => {
        res.setEncoding("utf8"); // a StringDecoder: multi-byte characters split across chunks stay whole
        res.on("end", () => {
          ok({ status: res.statusCode ?? 0, headers: res.headers, events, comments });
        });
        res.on("error", fail);
        res.on("aborted", () => fail(new Error("SSE response aborted")));
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        resume() {
          res.on("data", (chunk: string) => take(parse(chunk)));
          res.resume();
        },
        done,
        destroy() {
          done.catch(() => undefined); // abandoning the stream is not an error
          req.destroy();
        },
      });
    });
    req.on("error", reject);
    req.end();
  });
}

/** A raw GET over node:http with the path sent exactly as given (fetch/URL would normalise `..` and escapes). */
export function rawGet(base: string, rawPath: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: rawPath, method: "GET", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}
