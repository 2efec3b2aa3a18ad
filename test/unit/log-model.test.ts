// The dashboard's log model: terminal output → lines of styled text, whatever the chunking, with nothing but
// colours and text surviving from escape sequences.
import { describe, expect, it } from "@jest/globals";
import { TerminalText, paletteColor } from "../../src/web/ansi.js";
import { LogModel } from "../../src/web/log-model.js";

const texts = (m: LogModel) => m.all().map((l) => l.segments.map((s) => s.text).join(""));
const feedAll = (chunks: [("stdout" | "stderr" | "system")?, string?][] | string[], model = new LogModel()) => {
  for (const c of chunks) {
    if (typeof c === "string") model.append("stdout", c);
    else model.append(c[0] ?? "stdout", c[1] ?? "");
  }
  return model;
};

describe("log model", () => {
  it("joins lines split anywhere across chunks", () => {
    expect(texts(feedAll(["hel", "lo\nwor", "ld\n", "\n", "last"]))).toEqual(["hello", "world", "", "last"]);
  });

  it("lets a carriage return overwrite the line, but treats CRLF (also split across chunks) as one line break", () => {
    expect(texts(feedAll(["10%\r20%", "\r30%\n", "a\r", "\nb\r\n"]))).toEqual(["30%", "a", "b"]);
  });

  it("keeps colours across chunks and escape sequences cut in half", () => {
    const m = feedAll(["\x1b[31mred", " still\x1b[0m plain \x1b[3", "2mgreen\x1b[1;4mbold\x1b[m\n"]);
    const segs = m.all()[0]?.segments ?? [];
    expect(segs.map((s) => [s.text, s.classes])).toEqual([
      ["red still", "fg-red"],
      [" plain ", ""],
      ["green", "fg-green"],
      ["bold", "fg-green a-bold a-underline"],
    ]);
  });

  it("turns 256-colour and true-colour text into CSS colours and bright colours into classes", () => {
    const m = feedAll(["\x1b[38;5;196mA\x1b[48;2;1;2;3mB\x1b[0m\x1b[92mC\n"]);
    const segs = m.all()[0]?.segments ?? [];
    expect(segs.map((s) => [s.text, s.classes, s.fg, s.bg])).toEqual([
      ["A", "", paletteColor(196), null],
      ["B", "", paletteColor(196), "rgb(1, 2, 3)"],
      ["C", "fg-bright-green", null, null],
    ]);
    expect(paletteColor(196)).toBe("rgb(255, 0, 0)");
    expect(paletteColor(244)).toBe("rgb(128, 128, 128)");
  });

  it("drops hyperlinks, window titles, cursor movement and other controls, keeping their visible text as text", () => {
    const m = feedAll([
      "\x1b]8;;javascript:alert(1)\x07click\x1b]8;;\x07 \x1b]0;title\x1b\\<script>alert(1)</script>",
      " \x1b[2K\x1b[1A<img src=x onerror=alert(1)>\x1bPq#0\x1b\\\x07\x00\x9b\x1b7\x1b(B end\n",
    ]);
    expect(texts(m)).toEqual(["click <script>alert(1)</script> <img src=x onerror=alert(1)> end"]);
    expect(m.all()[0]?.segments.every((s) => s.classes === "" && s.fg === null)).toBe(true);
  });

  it("holds an unfinished escape for the next chunk, but shows what never finishes once it grows too long", () => {
    const t = new TerminalText();
    expect(t.feed("ok \x1b]8;;https://exa")).toEqual([{ kind: "text", segments: [{ text: "ok ", classes: "", fg: null, bg: null }] }]);
    expect(t.feed("mple.org\x07link")).toEqual([{ kind: "text", segments: [{ text: "link", classes: "", fg: null, bg: null }] }]);
    const pieces = t.feed(`\x1b]${"x".repeat(600)}`);
    expect(pieces.flatMap((p) => (p.kind === "text" ? p.segments.map((s) => s.text) : []))).toEqual([`]${"x".repeat(600)}`]);
  });

  it("keeps each stream on its own lines when they interleave, and marks each line's stream", () => {
    const m = feedAll([
      ["stdout", "abc"],
      ["stderr", "err\n"],
      ["stdout", "def\n"],
      ["system", "Output passed the limit.\n"],
    ]);
    expect(m.all().map((l) => [l.stream, l.segments.map((s) => s.text).join("")])).toEqual([
      ["stdout", "abc"],
      ["stderr", "err"],
      ["stdout", "def"],
      ["system", "Output passed the limit."],
    ]);
  });

  it("applies backspaces and splits an overlong line", () => {
    const m = new LogModel(100, 5);
    feedAll(["abcd\x08\x08X\n", "0123456789012\n"], m);
    expect(texts(m)).toEqual(["abX", "01234", "56789", "012"]);
  });

  it("keeps only the last lines, reports what changed and what was dropped", () => {
    const m = new LogModel(10);
    m.append("stdout", "first\n");
    expect(m.takeChanges().changed.map((l) => l.id)).toEqual([0]);
    for (let i = 1; i < 1000; i++) m.append("stdout", `line ${i}\n`);
    expect(m.size).toBeLessThanOrEqual(110);
    expect(m.size + m.dropped).toBe(1000);
    expect(texts(m).at(-1)).toBe("line 999");
    const changes = m.takeChanges();
    expect(changes.firstId).toBe(m.all()[0]?.id);
    expect(changes.changed.map((l) => l.id)).toEqual(m.all().map((l) => l.id));
    m.append("stdout", "progress 1%\rprogress 2%");
    expect(m.takeChanges().changed.map((l) => texts(m)[m.all().indexOf(l)])).toEqual(["progress 2%"]);
  });
});
