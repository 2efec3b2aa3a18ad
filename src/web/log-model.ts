// A task's log as lines, for the log view: the output of each stream becomes lines of styled segments, carriage
// returns overwrite the current line (progress bars), and only the last `maxLines` lines are kept, so a 50 MB log
// costs the page no more than a short one. Pure: the view renders what `takeChanges` reports.
import type { LogStream } from "../contract/types.js";
import { type Segment, TerminalText } from "./ansi.js";

export interface LogLine {
  readonly id: number;
  readonly stream: LogStream;
  segments: Segment[];
  /** Characters in the line (bounded by maxLineChars: a longer line continues on the next). */
  length: number;
}

interface StreamState {
  readonly terminal: TerminalText;
  open: LogLine | null;
  /** A carriage return was the last thing seen: the next text replaces the line. */
  overwrite: boolean;
}

export interface LogChanges {
  /** Lines with a smaller id are gone from the model (dropped from the front). */
  readonly firstId: number;
  /** Lines added or changed since the last call, in id order (all kept). */
  readonly changed: readonly LogLine[];
}

export class LogModel {
  private readonly lines: LogLine[] = [];
  private readonly streams = new Map<LogStream, StreamState>();
  private readonly dirty = new Set<LogLine>();
  private nextId = 0;
  /** Lines dropped from the front because the model holds at most maxLines. */
  dropped = 0;

  constructor(
    readonly maxLines = 5000,
    readonly maxLineChars = 10_000,
  ) {}

  get size(): number {
    return this.lines.length;
  }

  /** The kept lines, oldest first. */
  all(): readonly LogLine[] {
    return this.lines;
  }

  append(stream: LogStream, text: string): void {
    let s = this.streams.get(stream);
    if (!s) {
      s = { terminal: new TerminalText(), open: null, overwrite: false };
      this.streams.set(stream, s);
    }
    for (const piece of s.terminal.feed(text)) {
      switch (piece.kind) {
        case "newline":
          // An empty line is still a line; a line break after a carriage return keeps the line's text.
          s.overwrite = false;
          if (!s.open) this.lineFor(s, stream);
          s.open = null;
          s.overwrite = false;
          break;
        case "return":
          s.overwrite = true;
          break;
        case "backspace":
          if (s.open && s.open === this.lines[this.lines.length - 1]) this.backspace(s.open);
          break;
        case "text":
          for (const seg of piece.segments) this.write(s, stream, seg);
          break;
      }
    }
    this.trim();
  }

  /** What changed since the last call; the view applies it and the model forgets it. */
  takeChanges(): LogChanges {
    const firstId = this.lines[0]?.id ?? this.nextId;
    const changed = [...this.dirty].filter((l) => l.id >= firstId).sort((a, b) => a.id - b.id);
    this.dirty.clear();
    return { firstId, changed };
  }

  /** The stream's current line: its open line while nothing else was written after it, else a new one. */
  private lineFor(s: StreamState, stream: LogStream): LogLine {
    if (s.open && s.open === this.lines[this.lines.length - 1]) {
      if (s.overwrite) {
        s.open.segments = [];
        s.open.length = 0;
        s.overwrite = false;
        this.dirty.add(s.open);
      }
      return s.open;
    }
    const line: LogLine = { id: this.nextId++, stream, segments: [], length: 0 };
    this.lines.push(line);
    this.dirty.add(line);
    s.open = line;
    s.overwrite = false;
    return line;
  }

  private write(s: StreamState, stream: LogStream, seg: Segment): void {
    let rest = seg.text;
    while (rest.length > 0) {
      let line = this.lineFor(s, stream);
      if (line.length >= this.maxLineChars) {
        s.open = null; // an overlong line goes on in the next one
        line = this.lineFor(s, stream);
      }
      const room = this.maxLineChars - line.length;
      const part = rest.length > room ? rest.slice(0, room) : rest;
      rest = rest.slice(part.length);
      const last = line.segments[line.segments.length - 1];
      if (last && last.classes === seg.classes && last.fg === seg.fg && last.bg === seg.bg) last.text += part;
      else line.segments.push({ ...seg, text: part });
      line.length += part.length;
      this.dirty.add(line);
    }
  }

  private backspace(line: LogLine): void {
    const last = line.segments[line.segments.length - 1];
    if (!last) return;
    last.text = last.text.slice(0, -1);
    if (last.text === "") line.segments.pop();
    line.length = Math.max(0, line.length - 1);
    this.dirty.add(line);
  }

  /** Drops the oldest lines once there are a fifth more than maxLines (in batches: a splice per line would be slow). */
  private trim(): void {
    if (this.lines.length <= this.maxLines + Math.max(100, Math.floor(this.maxLines / 5))) return;
    const excess = this.lines.length - this.maxLines;
    for (const gone of this.lines.splice(0, excess)) this.dirty.delete(gone);
    this.dropped += excess;
    const firstId = this.lines[0]?.id ?? this.nextId;
    for (const s of this.streams.values()) if (s.open && s.open.id < firstId) s.open = null;
  }
}
