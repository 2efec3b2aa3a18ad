// An incremental Server-Sent Events parser (WHATWG HTML "event stream interpretation").

/** One dispatched event. `id` is the stream's last event id at dispatch time (ids persist across events). */
export interface SseMessage {
  event: string;
  data: string;
  id: string;
}

const LINE_BREAK = /\r\n|\r|\n/g;

/** Options of {@link SseParser}. */
export interface SseParserOptions {
  /**
   * Called with each comment line's text (after the `:`, one leading space dropped) as it is parsed, e.g. a
   * server's heartbeats. Comments never become events, with or without it.
   */
  onComment?: (text: string) => void;
}

/**
 * Feeds decoded text in, gets complete events out. Lines may end in LF, CRLF or CR (also split across chunks),
 * `data:` lines are joined with LF, comments (`:`) are skipped (or handed to `onComment`), a leading BOM is
 * dropped, and an event is only dispatched at its terminating blank line, so a connection that drops mid-event
 * yields nothing partial.
 */
export class SseParser {
  #buffer = "";
  #started = false;
  #skipLeadingLF = false;
  #event = "";
  #data: string[] = [];
  #lastEventId: string;
  #retryMs: number | undefined;
  readonly #onComment: ((text: string) => void) | undefined;

  constructor(lastEventId = "", opts: SseParserOptions = {}) {
    this.#lastEventId = lastEventId;
    this.#onComment = opts.onComment;
  }

  /** The last event id seen (or given to the constructor). */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** The reconnection delay the server asked for with `retry:`, if any. */
  get retryMs(): number | undefined {
    return this.#retryMs;
  }

  /** Parses another piece of the stream and returns the events it completed. */
  push(text: string): SseMessage[] {
    if (text.length === 0) return [];
    if (!this.#started) {
      this.#started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.#skipLeadingLF) {
      // The previous piece ended in CR: an LF right after it belongs to the same line break.
      this.#skipLeadingLF = false;
      if (text.startsWith("\n")) text = text.slice(1);
    }
    const out: SseMessage[] = [];
    const buffer = this.#buffer + text;
    // The old buffer holds no line break, so the search can start where it ended.
    LINE_BREAK.lastIndex = this.#buffer.length;
    let start = 0;
    for (let m = LINE_BREAK.exec(buffer); m !== null; m = LINE_BREAK.exec(buffer)) {
      this.#line(buffer.slice(start, m.index), out);
      start = m.index + m[0].length;
      if (m[0] === "\r" && start === buffer.length) this.#skipLeadingLF = true;
    }
    this.#buffer = buffer.slice(start);
    return out;
  }

  #line(line: string, out: SseMessage[]): void {
    if (line === "") {
      if (this.#data.length > 0) out.push({ event: this.#event || "message", data: this.#data.join("\n"), id: this.#lastEventId });
      this.#data = [];
      this.#event = "";
      return;
    }
    if (line.startsWith(":")) {
      this.#onComment?.(line.startsWith(": ") ? line.slice(2) : line.slice(1));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.#event = value;
        break;
      case "data":
        this.#data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.#lastEventId = value;
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.#retryMs = Number(value);
        break;
      default:
        break;
    }
  }
}
