// A small, spec-following Server-Sent Events parser for tests (WHATWG HTML §9.2 "event stream interpretation"):
// lines end with CRLF, LF or CR; a blank line dispatches; `field: value` (one leading space dropped);
// lines starting with ":" are comments; several `data:` lines are joined with "\n".
import http from "node:http";

export interface SseEvent {
  /** The `event:` field, "message" when absent. */
  readonly event: string;
  readonly data: string;
  /** The `id:` field of this event, or undefined when the event had none. */
  readonly id: string | undefined;
}

export type SseItem = { readonly kind: "event"; readonly event: SseEvent } | { readonly kind: "comment"; readonly text: string };

/** Incremental parser: feed it decoded text in any chunking; it returns the items each chunk completed. */
export class SseParser {
  private buffer = "";
  private pendingCr = false;
  private data: string[] = [];
  private hasData = false;
  private eventType = "";
  private id: string | undefined;

  push(text: string): SseItem[] {
    const out: SseItem[] = [];
    let s = text;
    // A CR at the very end of the previous chunk may be the first half of a CRLF.
    if (this.pendingCr && s.startsWith("\n")) s = s.slice(1);
    this.pendingCr = false;
    this.buffer += s;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(this.buffer);
      if (!m) break;
      if (m[0] === "\r" && m.index === this.buffer.length - 1) {
        // Could still become CRLF: take the line now, and drop a following LF next time.
        this.pendingCr = true;
      }
      const line = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      this.line(line, out);
    }
    return out;
  }

  /** End of stream: an event without its terminating blank line is discarded (as the spec says). */
  end(): SseItem[] {
    this.buffer = "";
    this.data = [];
    this.hasData = false;
    this.eventType = "";
    return [];
  }

  private line(line: string, out: SseItem[]): void {
    if (line === "") {
      if (this.hasData || this.eventType !== "") {
        out.push({ kind: "event", event: { event: this.eventType || "message", data: this.data.join("\n"), id: this.id } });
      }
      this.data = [];
      this.hasData = false;
      this.eventType = "";
      this.id = undefined;
      return;
    }
    if (line.startsWith(":")) {
      out.push({ kind: "comment", text: line.slice(1).replace(/^ /, "") });
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "data") {
      this.data.push(value);
      this.hasData = true;
    } else if (field === "event") this.eventType = value;
    else if (field === "id") {
      if (!value.includes("\0")) this.id = value;
    }
    // "retry" and unknown fields are ignored.
  }
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
    const parser = new SseParser();
    const decoder = new TextDecoder("utf-8");
    const reader = body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        yield* parser.push(decoder.decode(value, { stream: true }));
      }
      yield* parser.push(decoder.decode());
      yield* parser.end();
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
export const logData = (events: readonly SseEvent[]): (LogData & { id: string | undefined })[] =>
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
      const parser = new SseParser();
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
          take(parser.end());
          ok({ status: res.statusCode ?? 0, headers: res.headers, events, comments });
        });
        res.on("error", fail);
        res.on("aborted", () => fail(new Error("SSE response aborted")));
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        resume() {
          res.on("data", (chunk: string) => take(parser.push(chunk)));
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
