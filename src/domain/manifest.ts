// Manifests of a workspace (what it held: path, type, size, mode, content hash) and how two of them compare: the
// change list of a task, from its starting workspace to its final one. Pure: no I/O.
//
// Entries are kept in path order (by Unicode code point, which is the byte order of their UTF-8 names, the order
// `LC_ALL=C sort` gives), so two manifests compare in one pass, each read once, whatever their size.
import type { ChangeKind, ChangeSummary, ManifestEntryType } from "../contract/types.js";

export type { ChangeKind, ChangeSummary, ManifestEntryType } from "../contract/types.js";

/** One path of a workspace. Modification times are not kept: a task controls them, so they prove nothing. */
export interface ManifestEntry {
  /** Relative, "/"-separated, without a trailing "/". Names that are not UTF-8 read with U+FFFD (as node-tar reads them). */
  readonly path: string;
  readonly type: ManifestEntryType;
  /** A file's bytes; a symbolic link's target length in bytes; 0 otherwise. */
  readonly size: number;
  /** Permission bits (mode & 0o7777); null when unknown. */
  readonly mode: number | null;
  /** Hex sha256 of a file's content; null when it was not read (a file over the archive's per-file bound). */
  readonly sha256: string | null;
  /** A symbolic link's target, as text: never followed. */
  readonly target?: string;
  /** Where a starting entry's content can be read again: the task's `files`, or its fromTask's archive. */
  readonly from?: "files" | "fromTask";
}

/** One change: the entry before (absent when added) and after (absent when deleted). */
export interface ChangeRecord {
  readonly path: string;
  readonly change: ChangeKind;
  readonly before: ManifestEntry | null;
  readonly after: ManifestEntry | null;
}

/**
 * Compares two paths by Unicode code point, which is the byte order of their UTF-8 encodings. JavaScript's `<`
 * compares UTF-16 code units, which disagrees for characters above U+FFFF against U+E000–U+FFFF.
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (0xD800–0xDFFF) encode code points above 0xFFFF: move them above 0xE000–0xFFFF.
    x = x >= 0xd800 && x <= 0xdfff ? x + 0x2000 : x >= 0xe000 ? x - 0x800 : x;
    y = y >= 0xd800 && y <= 0xdfff ? y + 0x2000 : y >= 0xe000 ? y - 0x800 : y;
    return x - y;
  }
  return a.length - b.length;
}

/** The bytes an entry stands for in a summary: a file's or a link's size, nothing for the rest. */
const weight = (e: ManifestEntry | null): number => (e && (e.type === "file" || e.type === "symlink") ? e.size : 0);

/** Whether the same path changed between two entries, and how; null when it did not. */
export function compareEntries(before: ManifestEntry, after: ManifestEntry): ChangeKind | null {
  if (before.type !== after.type) return "type_changed";
  if (before.type === "symlink") return before.target === after.target ? null : "modified";
  if (before.type !== "file") return null; // directories and special files: only their existence and type count
  if (before.mode !== null && after.mode !== null && before.mode !== after.mode) return "modified";
  if (before.size !== after.size) return "modified";
  // Unhashed (over the archive's per-file bound) on either side: compared by size and mode only.
  if (before.sha256 === null || after.sha256 === null) return null;
  return before.sha256 === after.sha256 ? null : "modified";
}

export const emptySummary = (): ChangeSummary => ({ added: 0, modified: 0, deleted: 0, typeChanged: 0, bytesAdded: 0, bytesRemoved: 0 });

/** Adds one change to a summary: counts by kind, and the bytes the path grew or shrank by. */
export function addToSummary(s: ChangeSummary, c: ChangeRecord): void {
  if (c.change === "added") s.added++;
  else if (c.change === "deleted") s.deleted++;
  else if (c.change === "modified") s.modified++;
  else s.typeChanged++;
  const grew = weight(c.after) - weight(c.before);
  if (grew > 0) s.bytesAdded += grew;
  else s.bytesRemoved -= grew;
}

/**
 * Compares a starting manifest (pulled from `before`, in path order) with a final one pushed entry by entry in
 * path order, emitting each change in path order. Memory stays constant whatever the sizes.
 *
 * An entry pushed out of order (only possible for names that are not UTF-8, whose decoded text does not sort as
 * their bytes do) is compared with nothing: it is listed as added.
 */
export class ChangeMerge {
  readonly summary = emptySummary();
  private next: ManifestEntry | undefined;
  private last: string | null = null;

  constructor(
    private readonly before: Iterator<ManifestEntry>,
    private readonly emit: (c: ChangeRecord) => void,
  ) {
    this.advance();
  }

  /** The next final entry; its path must not be lower than the previous one's. */
  push(after: ManifestEntry): void {
    const inOrder = this.last === null || comparePaths(this.last, after.path) < 0;
    if (!inOrder) {
      this.record({ path: after.path, change: "added", before: null, after });
      return;
    }
    this.last = after.path;
    while (this.next && comparePaths(this.next.path, after.path) < 0) this.deleted();
    if (this.next && this.next.path === after.path) {
      const before = this.next;
      this.advance();
      const change = compareEntries(before, after);
      if (change) this.record({ path: after.path, change, before, after });
      return;
    }
    this.record({ path: after.path, change: "added", before: null, after });
  }

  /** Lists what is left of the starting manifest as deleted; returns the summary. */
  end(): ChangeSummary {
    while (this.next) this.deleted();
    return this.summary;
  }

  private deleted(): void {
    const before = this.next as ManifestEntry;
    this.advance();
    this.record({ path: before.path, change: "deleted", before, after: null });
  }

  private advance(): void {
    const r = this.before.next();
    this.next = r.done ? undefined : r.value;
  }

  private record(c: ChangeRecord): void {
    addToSummary(this.summary, c);
    this.emit(c);
  }
}

/**
 * A path as one line of text, as git quotes it (core.quotePath, less the quoting of non-ASCII letters): as it is,
 * unless it holds a control character, a double quote or a backslash; then in double quotes with C escapes, so
 * a name holding a newline still takes exactly one line.
 */
export function quotePath(p: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is looked for
  if (!/[\u0000-\u001f\u007f"\\]/.test(p)) return p;
  const named: Record<string, string> = {
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
    "\x07": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
  };
  let out = "";
  for (const ch of p) {
    const code = ch.codePointAt(0) as number;
    out += named[ch] ?? (code < 0x20 || code === 0x7f ? `\\${code.toString(8).padStart(3, "0")}` : ch);
  }
  return `"${out}"`;
}

/** Reads back a path written by {@link quotePath}. */
export function unquotePath(line: string): string {
  if (!line.startsWith('"') || !line.endsWith('"') || line.length < 2) return line;
  const named: Record<string, string> = { n: "\n", t: "\t", r: "\r", '"': '"', "\\": "\\", a: "\x07", b: "\b", f: "\f", v: "\v" };
  return line
    .slice(1, -1)
    .replace(/\\([0-7]{3}|.)/g, (_, e: string) => (e.length === 3 ? String.fromCharCode(Number.parseInt(e, 8)) : (named[e] ?? e)));
}

/** An entry as stored, one JSON object per line (short keys: a manifest may hold hundreds of thousands). */
export interface EntryJson {
  p: string;
  t: ManifestEntryType;
  s: number;
  m: number | null;
  h: string | null;
  l?: string;
  f?: "files" | "fromTask";
}

export function entryToJson(e: ManifestEntry): EntryJson {
  const o: EntryJson = { p: e.path, t: e.type, s: e.size, m: e.mode, h: e.sha256 };
  if (e.target !== undefined) o.l = e.target;
  if (e.from !== undefined) o.f = e.from;
  return o;
}

export function entryFromJson(o: EntryJson): ManifestEntry {
  return {
    path: o.p,
    type: o.t,
    size: o.s,
    mode: o.m,
    sha256: o.h,
    ...(o.l !== undefined ? { target: o.l } : {}),
    ...(o.f !== undefined ? { from: o.f } : {}),
  };
}

/** The lines of a text, without their "\n" (a last empty line is left out). */
export function* linesOf(text: string): Generator<string> {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    yield text.slice(start, end);
    start = end + 1;
  }
}
