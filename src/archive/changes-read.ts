// Reading what a task changed back out of the archive store (archive/changes.ts writes it): the final manifest (a
// later task's fromTask start), and the change list, page by page or whole, with its trailer. Streamed and parsed
// line by line: a change list of a million entries is never held whole.
import type { Readable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { createGunzip } from "node:zlib";
import { BerthError } from "../errors.js";
import { type ChangeRecord, type EntryJson, entryFromJson, type ManifestEntry } from "../domain/manifest.js";
import type { ArchiveStore } from "./archive-store.js";
import type { ChangesLine, ChangesTrailer } from "./changes.js";

/**
 * Reads the stored manifest of `workspace`'s final state, calling `visit` for each entry; false when there is none
 * (a task archived before manifests were kept, or one too large to keep).
 */
export async function readManifest(
  store: ArchiveStore,
  workspace: string,
  signal: AbortSignal,
  visit: (e: ManifestEntry) => void,
): Promise<boolean> {
  const got = await store.read(workspace, undefined, signal, "manifest");
  if (!got) return false;
  let ended = false;
  for await (const line of gzippedLines(got.stream, signal)) {
    const o = JSON.parse(line) as EntryJson | { end: unknown };
    if ("end" in o) ended = true;
    else visit(entryFromJson(o));
  }
  if (!ended) throw new Error(`the manifest of ${workspace} ends early`);
  return true;
}

/** The lines of a gzipped text stream, one at a time (a line may be up to the stream's whole length). */
export async function* gzippedLines(stream: Readable, signal: AbortSignal): AsyncGenerator<string> {
  const gunzip = createGunzip();
  const source = stream.pipe(gunzip);
  stream.on("error", (err) => gunzip.destroy(err));
  const onAbort = () => gunzip.destroy(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
  signal.addEventListener("abort", onAbort, { once: true });
  const decoder = new StringDecoder("utf8");
  let rest = "";
  try {
    for await (const chunk of source) {
      const text = rest + decoder.write(chunk as Buffer);
      let start = 0;
      for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
        yield text.slice(start, end);
        start = end + 1;
      }
      rest = text.slice(start);
    }
    rest += decoder.end();
    if (rest !== "") yield rest;
  } finally {
    signal.removeEventListener("abort", onAbort);
    stream.destroy();
    gunzip.destroy();
  }
}

/** A change list line as a change, or null for the other kinds of line. */
export function changeOf(line: ChangesLine): ChangeRecord | null {
  if (!("c" in line)) return null;
  return { path: line.p, change: line.c, before: line.b && entryFromJson(line.b), after: line.a && entryFromJson(line.a) };
}

/**
 * Every line of the change list of `workspace`, in order, ending with its trailer.
 * @throws BerthError changes_not_available when the store has no change list for it; an Error when it ends early.
 */
export async function* readChangeList(store: ArchiveStore, workspace: string, signal: AbortSignal): AsyncGenerator<ChangesLine> {
  const got = await store.read(workspace, undefined, signal, "changes");
  if (!got) {
    throw new BerthError(
      "changes_not_available",
      "No change list is stored for this task: it was archived before berth recorded changes, its starting workspace could not be read, or the list was too large to keep.",
    );
  }
  let ended = false;
  for await (const text of gzippedLines(got.stream, signal)) {
    const line = JSON.parse(text) as ChangesLine;
    if ("end" in line) ended = true;
    yield line;
  }
  if (!ended) throw new Error(`the change list of ${workspace} ends early`);
}

/** One page of the change list: `limit` changes after the first `offset`, whether more follow, and the trailer if reached. */
export async function readChangesPage(
  store: ArchiveStore,
  workspace: string,
  page: { offset: number; limit: number },
  signal: AbortSignal,
): Promise<{ changes: ChangeRecord[]; more: boolean }> {
  const changes: ChangeRecord[] = [];
  let seen = 0;
  const ac = new AbortController();
  const onAbort = () => ac.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const line of readChangeList(store, workspace, ac.signal)) {
      const c = changeOf(line);
      if (!c) break; // the changes come first: the page is complete
      if (seen++ < page.offset) continue;
      if (changes.length === page.limit) return { changes, more: true };
      changes.push(c);
    }
    return { changes, more: false };
  } finally {
    signal.removeEventListener("abort", onAbort);
    ac.abort(); // stops reading the rest of the list
  }
}

/** The trailer and the starting contents of `files` for the changes `want` keeps, with those changes. */
export async function readChanges(
  store: ArchiveStore,
  workspace: string,
  want: (c: ChangeRecord) => boolean,
  signal: AbortSignal,
): Promise<{ changes: ChangeRecord[]; files: Map<string, string>; trailer: ChangesTrailer }> {
  const changes: ChangeRecord[] = [];
  const wanted = new Set<string>();
  const files = new Map<string, string>();
  let trailer: ChangesTrailer | undefined;
  for await (const line of readChangeList(store, workspace, signal)) {
    const c = changeOf(line);
    if (c) {
      if (want(c)) {
        changes.push(c);
        wanted.add(c.path);
      }
    } else if ("file" in line) {
      if (wanted.has(line.file)) files.set(line.file, line.content);
    } else if ("end" in line) trailer = line.end;
  }
  return { changes, files, trailer: trailer as ChangesTrailer };
}
