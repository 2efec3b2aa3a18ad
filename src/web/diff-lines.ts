// A unified diff's lines, each with its role (header, hunk, added, removed, context, note), for colouring. Pure: the
// text is never interpreted as markup, only its first character read.

export type DiffLineKind = "meta" | "hunk" | "add" | "del" | "ctx" | "note";

export interface DiffLine {
  kind: DiffLineKind;
  text: string;
}

/**
 * The lines of `text` (git's format). Inside a hunk a line's first character says what it is; anything else there
 * (`diff --git`, `Binary files … differ`, `# berth: …`) starts a new file's header, where `---`/`+++` are names, not
 * removed or added lines.
 */
export function diffLines(text: string): DiffLine[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  let inHunk = false;
  return lines.map((line): DiffLine => {
    if (line.startsWith("@@")) {
      inHunk = true;
      return { kind: "hunk", text: line };
    }
    if (inHunk) {
      if (line.startsWith("+")) return { kind: "add", text: line };
      if (line.startsWith("-")) return { kind: "del", text: line };
      if (line.startsWith(" ") || line === "") return { kind: "ctx", text: line };
      if (line.startsWith("\\")) return { kind: "note", text: line };
      inHunk = false;
    }
    return { kind: line.startsWith("# berth:") ? "note" : "meta", text: line };
  });
}
