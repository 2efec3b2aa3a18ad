// Terminal output → plain text pieces with colours, for the log view. Colours and text styles (SGR) are parsed by
// anser; every other escape sequence (cursor movement, OSC window titles and hyperlinks, DCS, ...) and every other
// control character is dropped, so nothing a task prints can become a link, markup or a fake prompt. Pure: no DOM.
import Anser from "anser";

/** A run of text with one style. `classes` names berth's CSS classes; `fg`/`bg` are CSS colours for 256/true colours. */
export interface Segment {
  text: string;
  classes: string;
  fg: string | null;
  bg: string | null;
}

/** What one piece of output does to the current line. */
export type Piece =
  | { kind: "text"; segments: Segment[] }
  | { kind: "newline" }
  /** Carriage return: the next text overwrites the line (progress bars). */
  | { kind: "return" }
  | { kind: "backspace" };

// CSI (ESC [ … final), OSC (ESC ] … BEL or ESC \), DCS/SOS/PM/APC (ESC P|X|^|_ … ESC \), and the other escapes
// (ESC, intermediates, one final character other than those that open the longer forms).
const ESCAPE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[ -/]*[0-OQ-WYZ\\`-~])/g;
const SGR = /^\x1b\[[0-9;:]*m$/;
/** C0 and C1 controls other than tab, newline, carriage return and backspace; ESC left over from a broken sequence. */
const CONTROL = /[\x00-\x07\x0b\x0c\x0e-\x1f\x7f-\x9f]/g;
const BREAKS = /(\r\n|\n|\r|\x08)/;
/** An unfinished escape at the end of a chunk is held back for the next one, unless it grows past this. */
const MAX_HELD = 512;
/** No SGR parameter anser acts on: prefixed to every call, so text before the first sequence keeps the current style. */
const KEEP_STYLE = "\x1b[10m";

const BASIC = ["black", "red", "green", "yellow", "blue", "magenta", "cyan", "white"];

/** xterm's 256-colour palette entry 16–255 as a CSS colour (0–15 are themed classes). */
export function paletteColor(n: number): string {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (c: number) => (c === 0 ? 0 : 55 + c * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

/** anser's class for a colour → [berth class or null, CSS colour or null]. */
function colour(value: string | null, truecolor: string | null, ground: "fg" | "bg"): [string | null, string | null] {
  if (!value) return [null, null];
  if (value === "ansi-truecolor") return truecolor ? [null, `rgb(${truecolor})`] : [null, null];
  const palette = /^ansi-palette-(\d+)$/.exec(value);
  if (palette) return [null, paletteColor(Number(palette[1]))];
  const basic = /^ansi-(bright-)?([a-z]+)$/.exec(value);
  if (basic && BASIC.includes(basic[2] as string)) return [`${ground}-${basic[1] ? "bright-" : ""}${basic[2]}`, null];
  return [null, null];
}

/** One output stream's terminal state: the style in force and any unfinished escape sequence. */
export class TerminalText {
  private readonly anser = new Anser();
  private held = "";

  /** Splits a chunk of output into pieces; an escape sequence cut at the chunk's end is completed by the next. */
  feed(chunk: string): Piece[] {
    let text = this.held + chunk;
    this.held = "";
    const lastEsc = text.lastIndexOf("\x1b");
    if (lastEsc !== -1) {
      const tail = text.slice(lastEsc);
      ESCAPE.lastIndex = 0;
      const complete = ESCAPE.exec(tail);
      if (complete?.index !== 0 && tail.length < MAX_HELD && !tail.includes("\n")) {
        this.held = tail;
        text = text.slice(0, lastEsc);
      }
    }
    return this.pieces(clean(text));
  }

  private pieces(text: string): Piece[] {
    const out: Piece[] = [];
    for (const part of text.split(BREAKS)) {
      if (part === "") continue;
      if (part === "\n" || part === "\r\n") out.push({ kind: "newline" });
      else if (part === "\r") out.push({ kind: "return" });
      else if (part === "\x08") out.push({ kind: "backspace" });
      else {
        const segments = this.style(part);
        if (segments.length > 0) out.push({ kind: "text", segments });
      }
    }
    return out;
  }

  private style(text: string): Segment[] {
    const chunks = this.anser.ansiToJson(KEEP_STYLE + text, { json: true, remove_empty: true, use_classes: true });
    // anser swaps the colours of reversed text itself (and drops "reverse" from the decorations).
    return chunks.map((c) => {
      const [fgClass, fg] = colour(c.fg, c.fg_truecolor, "fg");
      const [bgClass, bg] = colour(c.bg, c.bg_truecolor, "bg");
      const classes = [fgClass, bgClass, ...(c.decorations ?? []).map((d) => `a-${d}`)];
      return { text: c.content, classes: [...new Set(classes.filter(Boolean))].join(" "), fg, bg };
    });
  }
}

/** Keeps SGR sequences (for anser) and text; drops every other escape sequence and control character. */
function clean(text: string): string {
  if (!/[\x00-\x07\x0b\x0c\x0e-\x1f\x7f-\x9f]/.test(text)) return text;
  let out = "";
  let from = 0;
  ESCAPE.lastIndex = 0;
  for (let m = ESCAPE.exec(text); m !== null; m = ESCAPE.exec(text)) {
    out += text.slice(from, m.index).replace(CONTROL, "");
    if (SGR.test(m[0])) out += m[0];
    from = m.index + m[0].length;
  }
  return out + text.slice(from).replace(CONTROL, "");
}
