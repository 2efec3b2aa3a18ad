// Unified diffs (git's flavour: `diff --git` headers, file modes, quoted names) of what a task changed, one path at a
// time, with jsdiff; and the bounds that keep a diff's cost and size in check whatever the task wrote. Pure: the
// contents are handed in (archive/change-diff.ts reads them out of archives).
import { formatPatch, structuredPatch, type StructuredPatch } from "diff";
import { type ChangeRecord, type ManifestEntry, quotePath } from "./manifest.js";

/** Bounds of `GET /v1/tasks/:id/diff`. */
export const DIFF_LIMITS = {
  /** A file (either side) larger than this is named, not diffed. */
  fileBytes: 1024 * 1024,
  /** Contents read for one diff, both sides of every file: files past it are named, not diffed. */
  inputBytes: 32 * 1024 * 1024,
  /** The diff's text: it stops at the last whole file that fits (a first file alone is cut), with a note. */
  outputBytes: 4 * 1024 * 1024,
  /** Time jsdiff may spend on one file; past it, the file is shown as wholly replaced. */
  fileTimeoutMs: 1000,
  /** Context lines around each change. */
  context: 3,
} as const;

/** One side's content as handed to {@link renderDiff}. */
export type Side =
  | { readonly kind: "bytes"; readonly bytes: Buffer }
  /** Not read: too large, over the input budget, or gone (a fromTask's archive that expired). */
  | { readonly kind: "unread"; readonly why: string };

/** Whether a side of a change is shown as text at all: files and symbolic links (their target) are; the rest not. */
export const isDiffable = (e: ManifestEntry | null): e is ManifestEntry => e !== null && (e.type === "file" || e.type === "symlink");

const modeOf = (e: ManifestEntry): string =>
  e.type === "symlink" ? "120000" : `100${((e.mode ?? 0o644) & 0o777).toString(8).padStart(3, "0")}`;

/** UTF-8 text without NUL bytes (git's test for binary, plus valid UTF-8), else null. */
export function asText(bytes: Buffer): string | null {
  if (bytes.subarray(0, 8000).includes(0)) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return null;
  }
}

/**
 * The diff of one changed path: its before side against its after side, each a file or a symbolic link (else
 * absent, as for an added or deleted path). A type change from a file to a link (or back) is a deletion and an
 * addition, as git shows it. `before`/`after` are the contents, for the sides that have one.
 */
export function renderDiff(c: ChangeRecord, before: Side | null, after: Side | null): string {
  const b = isDiffable(c.before) ? c.before : null;
  const a = isDiffable(c.after) ? c.after : null;
  if (b && a && b.type !== a.type) return renderDiff({ ...c, after: null }, before, null) + renderDiff({ ...c, before: null }, null, after);
  if (!b && !a) return "";
  const name = c.path;
  const oldName = b ? `a/${name}` : "/dev/null";
  const newName = a ? `b/${name}` : "/dev/null";
  const patch: StructuredPatch = {
    oldFileName: oldName,
    newFileName: newName,
    oldHeader: undefined,
    newHeader: undefined,
    hunks: [],
    isGit: true,
  };
  if (!b) Object.assign(patch, { isCreate: true, newMode: modeOf(a as ManifestEntry) });
  else if (!a) Object.assign(patch, { isDelete: true, oldMode: modeOf(b) });
  else if (modeOf(b) !== modeOf(a)) Object.assign(patch, { oldMode: modeOf(b), newMode: modeOf(a) });
  const header = (note: string) => formatPatch(patch) + `${note}\n`;
  for (const side of [before, after]) if (side?.kind === "unread") return header(`# berth: not diffed: ${side.why}`);
  const oldText = b ? textOf(b, before) : "";
  const newText = a ? textOf(a, after) : "";
  if (oldText === null || newText === null) {
    return header(`Binary files ${b ? quotePath(oldName) : oldName} and ${a ? quotePath(newName) : newName} differ`);
  }
  const options = { context: DIFF_LIMITS.context, timeout: DIFF_LIMITS.fileTimeoutMs };
  const made = structuredPatch(oldName, newName, oldText, newText, undefined, undefined, options);
  patch.hunks = made?.hunks ?? wholeReplacement(oldText, newText);
  return formatPatch(patch);
}

/** A side's text: a link's target, or a file's bytes if they are text; null for a binary file. */
function textOf(e: ManifestEntry, side: Side | null): string | null {
  if (e.type === "symlink") return e.target ?? "";
  return side?.kind === "bytes" ? asText(side.bytes) : "";
}

/** One hunk replacing every old line with every new one: what a diff too costly to compute is shown as. */
function wholeReplacement(oldText: string, newText: string): StructuredPatch["hunks"] {
  const split = (t: string, sign: string): string[] => {
    if (t === "") return [];
    const lines = t.split("\n");
    const noNewline = lines[lines.length - 1] !== "";
    if (!noNewline) lines.pop();
    const out = lines.map((l) => sign + l);
    if (noNewline) out.push("\\ No newline at end of file");
    return out;
  };
  const minus = split(oldText, "-");
  const plus = split(newText, "+");
  const count = (ls: string[]) => ls.filter((l) => !l.startsWith("\\")).length;
  return [{ oldStart: 1, oldLines: count(minus), newStart: 1, newLines: count(plus), lines: [...minus, ...plus] }];
}

/** Collects a diff's text up to DIFF_LIMITS.outputBytes: whole files while they fit (a first one alone is cut). */
export class DiffOutput {
  private readonly parts: string[] = [];
  private bytes = 0;
  /** Set once something was left out for the size bound. */
  cut = false;

  constructor(private readonly maxBytes: number = DIFF_LIMITS.outputBytes) {}

  /** Adds one path's diff; false (and nothing added, or a first file cut) when it does not fit. */
  add(text: string): boolean {
    if (this.cut) return false;
    const size = Buffer.byteLength(text);
    if (this.bytes + size <= this.maxBytes) {
      this.parts.push(text);
      this.bytes += size;
      return true;
    }
    this.cut = true;
    if (this.parts.length === 0) {
      const head = Buffer.from(text).subarray(0, this.maxBytes).toString("utf8");
      this.parts.push(head.slice(0, head.lastIndexOf("\n") + 1));
    }
    return false;
  }

  text(): string {
    return this.parts.join("");
  }
}
