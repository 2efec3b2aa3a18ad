// The change-only archive of a task (`GET /v1/tasks/:id/archive?changes=only`): the incremental backup of what it
// changed. A tar.gz of the entries its change list calls added, modified or type_changed (with the directories
// above them, so it unpacks on its own), copied out of the task's own archive, plus a list of the paths to remove
// first (those deleted, and those whose type changed), one per line, quoted as git quotes names when they hold a
// newline or another control character. Made once, on first request, and stored beside the archive (kind "delta").
import { once } from "node:events";
import { PassThrough } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { Header, Pack, type ReadEntry } from "tar";
import { quotePath } from "../domain/manifest.js";
import type { ArchiveStore } from "./archive-store.js";
import { walk } from "./archive-files.js";
import { changeOf, readChangeList } from "./changes-read.js";
import type { ChangesTrailer } from "./changes.js";
import { writeArchiveStream } from "./sink.js";

/** Changed paths a change-only archive is made for at most (the change list's own bound is about this). */
export const CHANGE_ARCHIVE_MAX_PATHS = 2_000_000;

/** Passes over the archive for new hard links to an unchanged file (one per link to the same file). */
const MAX_LINK_PASSES = 16;

/** What the change-only archive holds, before it is made. */
interface Plan {
  /** Paths whose entry is copied: added, modified, type_changed, and every directory above one. */
  readonly include: Set<string>;
  /** Paths to remove before unpacking, in path order. */
  readonly remove: string[];
  readonly trailer: ChangesTrailer;
}

async function planOf(store: ArchiveStore, workspace: string, signal: AbortSignal): Promise<Plan> {
  const include = new Set<string>();
  const remove: string[] = [];
  let trailer: ChangesTrailer | undefined;
  for await (const line of readChangeList(store, workspace, signal)) {
    if ("end" in line) trailer = line.end;
    const c = changeOf(line);
    if (!c) continue;
    if (include.size + remove.length > CHANGE_ARCHIVE_MAX_PATHS) throw new Error(`more than ${CHANGE_ARCHIVE_MAX_PATHS} changed paths`);
    if (c.change === "deleted" || c.change === "type_changed") remove.push(c.path);
    if (c.change === "deleted") continue;
    include.add(c.path);
    for (let i = c.path.lastIndexOf("/"); i > 0; i = c.path.lastIndexOf("/", i - 1)) include.add(c.path.slice(0, i));
  }
  return { include, remove, trailer: trailer as ChangesTrailer };
}

/**
 * Makes the change-only archive of `workspace` from its stored archive and change list, and stores it (kind
 * "delta"). `mtime` dates the deletion list's entry (the task's end, so that the same task always gives the same
 * bytes). Returns its size and sha256.
 * @throws BerthError changes_not_available when no change list is stored; not_found when the archive is gone.
 */
export async function makeChangeArchive(opts: {
  store: ArchiveStore;
  workspace: string;
  mtime: Date;
  signal: AbortSignal;
}): Promise<{ bytes: number; sha256: string }> {
  const { store, workspace, signal } = opts;
  const plan = await planOf(store, workspace, signal);
  const writer = await store.begin(workspace, signal, "delta");
  try {
    const raw = new PassThrough();
    const written = writeArchiveStream(raw.pipe(createGzip()), writer, signal);
    // The deletion list first: one tar header and its data, padded to a whole block.
    const list = Buffer.from(plan.remove.map((p) => `${quotePath(p)}\n`).join(""));
    const header = new Header({
      path: plan.trailer.deletedList,
      mode: 0o644,
      size: list.length,
      mtime: opts.mtime,
      type: "File",
      uid: 0,
      gid: 0,
    });
    header.encode();
    raw.write(header.block as Buffer);
    raw.write(Buffer.concat([list, Buffer.alloc((512 - (list.length % 512)) % 512)]));
    await copyEntries(store, workspace, plan.include, raw, signal);
    raw.end();
    const result = await written;
    await writer.commit(result);
    return result;
  } catch (err) {
    await writer.abort();
    throw err;
  }
}

/**
 * Copies the entries of `workspace`'s archive named in `include` into `raw` (a tar stream; its end-of-archive
 * blocks included). A hard link whose target is not copied is copied as its target's file, by a second pass.
 */
async function copyEntries(
  store: ArchiveStore,
  workspace: string,
  include: Set<string>,
  raw: PassThrough,
  signal: AbortSignal,
): Promise<void> {
  const open = async () => (await store.read(workspace, undefined, signal))?.stream ?? null;
  const pack = new Pack({ portable: false, gzip: false });
  const piped = pipeline(pack, raw, { end: false, signal });
  // Hard links whose target is not in the archive being made: target → the links' paths.
  const orphans = new Map<string, string[]>();
  await walk(
    open,
    signal,
    (e: ReadEntry, p: string) => {
      if (!include.has(p)) return "skip";
      const target = (e.linkpath ?? "").replace(/\/+$/, "");
      if (e.type === "Link" && !include.has(target)) {
        orphans.set(target, [...(orphans.get(target) ?? []), p]);
        return "skip";
      }
      pack.write(e);
      return "keep";
    },
    { lossyNames: true },
  );
  // Each such link becomes a copy of its target's file: one more pass per link to the same target.
  for (let pass = 0; orphans.size > 0; pass++) {
    if (pass === MAX_LINK_PASSES) throw new Error(`more than ${MAX_LINK_PASSES} new hard links to one unchanged file`);
    const before = orphans.size;
    let copied = 0;
    await walk(
      open,
      signal,
      (e: ReadEntry, p: string) => {
        const as = orphans.get(p);
        if (as === undefined || e.type === "Link") return "skip";
        e.path = as.shift() as string;
        if (as.length === 0) orphans.delete(p);
        copied++;
        pack.write(e);
        return "keep";
      },
      { lossyNames: true },
    );
    // A target that is not a regular file of the archive: such links cannot be copied.
    if (copied === 0 && orphans.size === before)
      throw new Error(`hard links to files not in the archive: ${[...orphans.keys()].slice(0, 3).join(", ")}`);
  }
  pack.end();
  await piped;
  await once(pack, "end").catch(() => undefined);
}
