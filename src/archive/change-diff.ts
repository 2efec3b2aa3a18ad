// The unified diff of what a task changed (`GET /v1/tasks/:id/diff`): the change list says which paths changed and
// where their starting content lives; the contents are read out of archives, never out of a workspace the task
// could have swapped for links. After: the task's own archive. Before: the task's `files` (kept in the change
// list) or its fromTask's archive. Only the files to diff are kept in memory, within DIFF_LIMITS.
import type { ReadEntry } from "tar";
import type { ChangeRecord } from "../domain/manifest.js";
import { DIFF_LIMITS, DiffOutput, isDiffable, renderDiff, type Side } from "../domain/unified-diff.js";
import { BerthError } from "../errors.js";
import type { ArchiveStore } from "./archive-store.js";
import { walk } from "./archive-files.js";
import { readChanges } from "./changes-read.js";

/** Paths diffed at most in one response (past it the diff says it was cut). */
export const DIFF_MAX_PATHS = 20_000;

export interface ChangeDiff {
  readonly text: string;
  /** Whether something was left out for a bound (the text then ends with a note saying so). */
  readonly cut: boolean;
  /** Paths shown. */
  readonly paths: number;
}

const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);

/**
 * The diff of every changed file and link of `workspace` (or of `path` only), in path order.
 * @throws BerthError changes_not_available when no change list is stored.
 */
export async function diffChanges(opts: {
  store: ArchiveStore;
  workspace: string;
  path?: string;
  signal: AbortSignal;
}): Promise<ChangeDiff> {
  const { store, signal } = opts;
  let more = false;
  let seen = 0;
  const { changes, files, trailer } = await readChanges(
    store,
    opts.workspace,
    (c) => {
      if (opts.path !== undefined && c.path !== opts.path) return false;
      if (!isDiffable(c.before) && !isDiffable(c.after)) return false;
      if (++seen > DIFF_MAX_PATHS) more = true;
      return !more;
    },
    signal,
  );
  // What each side needs read, within the input budget (in path order: the first files are the ones shown).
  let budget: number = DIFF_LIMITS.inputBytes;
  const sides = new Map<string, { before: Side | null; after: Side | null }>();
  const wantAfter = new Set<string>();
  const wantBefore = new Set<string>();
  const plan = (c: ChangeRecord, which: "before" | "after"): Side | null => {
    const e = c[which];
    if (e?.type !== "file") return null;
    if (e.size > DIFF_LIMITS.fileBytes)
      return { kind: "unread", why: `${which === "before" ? "was" : "is"} ${e.size} bytes, over the ${DIFF_LIMITS.fileBytes}-byte bound` };
    if (which === "before" && e.from === "files") {
      const text = files.get(c.path);
      return text === undefined
        ? { kind: "unread", why: "its starting content was not kept" }
        : { kind: "bytes", bytes: Buffer.from(text) };
    }
    if (which === "before" && (e.from !== "fromTask" || !trailer.fromTask))
      return { kind: "unread", why: "its starting content was not kept" };
    if (budget < e.size) return { kind: "unread", why: `over the diff's ${DIFF_LIMITS.inputBytes}-byte input bound` };
    budget -= e.size;
    (which === "before" ? wantBefore : wantAfter).add(c.path);
    return null;
  };
  for (const c of changes) sides.set(c.path, { before: plan(c, "before"), after: plan(c, "after") });
  const after = await readFiles(store, opts.workspace, wantAfter, signal);
  const before =
    trailer.fromTask && wantBefore.size > 0
      ? await readFiles(store, trailer.fromTask.workspace, wantBefore, signal).catch(gone)
      : new Map();
  const out = new DiffOutput();
  let paths = 0;
  for (const c of changes) {
    const planned = sides.get(c.path) as { before: Side | null; after: Side | null };
    const side = (which: "before" | "after", read: Map<string, Buffer> | null): Side | null => {
      if (planned[which]) return planned[which];
      if (c[which]?.type !== "file") return null;
      const bytes = read?.get(c.path);
      if (bytes) return { kind: "bytes", bytes };
      return {
        kind: "unread",
        why: which === "before" && !read ? `the archive of task ${trailer.fromTask?.id} is no longer stored` : "not found in the archive",
      };
    };
    if (!out.add(renderDiff(c, side("before", before), side("after", after)))) break;
    paths++;
  }
  const cut = out.cut || more;
  let text = out.text();
  if (cut) text += `# berth: diff cut: ${paths} paths shown; ask for one file with ?path=\n`;
  return { text, cut, paths };
}

/** The fromTask's archive is gone (expired, removed): its sides are named, not diffed. */
const gone = (err: unknown): null => {
  if (err instanceof BerthError && err.code === "not_found") return null;
  throw err;
};

/**
 * The bytes of the regular files `wanted` of `workspace`'s archive (hard links read as their target). Links are
 * never followed: a symbolic link or a path through one is not a regular file entry.
 */
async function readFiles(
  store: ArchiveStore,
  workspace: string,
  wanted: ReadonlySet<string>,
  signal: AbortSignal,
): Promise<Map<string, Buffer>> {
  const got = new Map<string, Buffer>();
  if (wanted.size === 0) return got;
  const links = new Map<string, string>();
  const collect = (paths: ReadonlySet<string>) =>
    walk(
      async () => (await store.read(workspace, undefined, signal))?.stream ?? null,
      signal,
      (e: ReadEntry, p: string) => {
        if (!paths.has(p)) return "skip";
        if (e.type === "Link") {
          links.set(p, (e.linkpath ?? "").replace(/\/+$/, ""));
          return "skip";
        }
        if (!FILE_TYPES.has(e.type) || (e.size ?? 0) > DIFF_LIMITS.fileBytes) return "skip";
        const chunks: Buffer[] = [];
        e.on("data", (c: Buffer) => chunks.push(c));
        e.on("end", () => got.set(p, Buffer.concat(chunks)));
        return "keep";
      },
      { lossyNames: true },
    );
  await collect(wanted);
  if (links.size > 0) {
    // A hard link's content is its target's, earlier in the archive: read those too, once more through it.
    const targets = new Set(links.values());
    await collect(targets);
    for (const [p, target] of links) {
      const bytes = got.get(target);
      if (bytes) got.set(p, bytes);
    }
  }
  return got;
}
