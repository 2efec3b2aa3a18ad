// What a task changed, recorded while its workspace is archived. The final manifest comes out of the archive pass
// (manifest-recorder.ts), path by path in name order; it is compared on the fly with the starting manifest
// (workspace/start-manifest.ts, taken before the container started), also in name order, so neither is ever held
// whole in memory. Two companions of the archive come out (archive-store.ts, removed with it), each gzipped JSON
// lines:
// - the manifest (`<workspace>.manifest.gz`): one entry per line, then {"end"}; a task started from this one
//   (fromTask) takes its starting files' hashes from it instead of reading them again;
// - the change list (`<workspace>.changes.gz`): one change per line (both entries), then the starting content of
//   the changed paths that came from the task's `files` (the only place it is kept once the task has ended:
//   its spec is deleted then), then {"end"} with the summary, where a fromTask start can be read, and the name
//   of the change-only archive's deletion list.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createGzip, gunzipSync } from "node:zlib";
import {
  ChangeMerge,
  type ChangeRecord,
  type ChangeSummary,
  type EntryJson,
  entryFromJson,
  entryToJson,
  linesOf,
  type ManifestEntry,
} from "../domain/manifest.js";
import type { ArchiveStore, StoredKind } from "./archive-store.js";
import { ManifestRecorder } from "./manifest-recorder.js";

/** Largest compressed manifest or change list stored (about 1.5 million entries); a larger one is not kept. */
export const COMPANION_MAX_BYTES = 64 * 1024 * 1024;
/** Largest starting manifest read back (uncompressed). */
const START_MAX_BYTES = 512 * 1024 * 1024;
/** The change-only archive's list of deleted paths, unless the task has a root entry of that name (then `.1`, ...). */
export const DELETED_LIST = ".berth-deleted";
const DELETED_LIST_NAME = /^\.berth-deleted(\.\d+)?$/;

/** The workspace as the task's container found it. */
export interface StartState {
  /** Its manifest, in path order: gzipped JSON lines (workspace/start-manifest.ts). */
  readonly manifest: Buffer;
  /** The task's `files`: the starting content of what came from them. */
  readonly files: Readonly<Record<string, string>>;
  /** The task it started from, whose archive holds the rest of the starting content. */
  readonly fromTask: { readonly id: string; readonly workspace: string } | null;
}

/** The change list's last line. */
export interface ChangesTrailer {
  readonly summary: ChangeSummary;
  readonly changes: number;
  readonly fromTask: { readonly id: string; readonly workspace: string } | null;
  readonly deletedList: string;
  /** Paths the manifest lacks (FIFOs and the like past the recorder's bound), and hard links listed without a hash. */
  readonly omitted: number;
  readonly unresolvedLinks: number;
}

/** One line of a change list: a change, a starting file's content, or the trailer. */
export type ChangesLine =
  | { c: ChangeRecord["change"]; p: string; b: EntryJson | null; a: EntryJson | null }
  | { file: string; content: string }
  | { end: ChangesTrailer };

/** What recording produced: the companions' bytes (null when over the bound) and the summary (null without a start). */
export interface RecordedChanges {
  readonly summary: ChangeSummary | null;
  readonly manifest: Buffer | null;
  readonly changes: Buffer | null;
}

/** Gzipped JSON lines collected in memory, up to `max` compressed bytes (past that, nothing is kept). */
class GzipLines {
  overflow = false;
  private readonly gz = createGzip();
  private readonly chunks: Buffer[] = [];
  private bytes = 0;
  private batch = "";

  constructor(private readonly max: number) {
    this.gz.on("data", (chunk: Buffer) => {
      if (this.overflow) return;
      this.bytes += chunk.length;
      if (this.bytes <= this.max) this.chunks.push(chunk);
      else {
        this.overflow = true;
        this.chunks.length = 0;
      }
    });
  }

  line(value: unknown): void {
    if (this.overflow) return;
    this.batch += `${JSON.stringify(value)}\n`;
    if (this.batch.length >= 64 * 1024) {
      this.gz.write(this.batch);
      this.batch = "";
    }
  }

  async end(): Promise<Buffer | null> {
    const ended = once(this.gz, "end");
    this.gz.end(this.batch);
    await ended;
    return this.overflow ? null : Buffer.concat(this.chunks);
  }
}

/** Records the final manifest as the archive is written and compares it with the start. */
export class ChangeLog {
  /** Hands the archive's entries and the packer's listing to the manifest. */
  readonly recorder: ManifestRecorder;
  private readonly manifest = new GzipLines(COMPANION_MAX_BYTES);
  private readonly changes = new GzipLines(COMPANION_MAX_BYTES);
  private readonly merge: ChangeMerge | null = null;
  private entries = 0;
  private changeCount = 0;
  /** Root names the deletion list could collide with, at the start and at the end. */
  private readonly listNames = new Set<string>();
  /** Changed paths whose starting content came from the task's `files`. */
  private readonly fromFiles: string[] = [];

  constructor(private readonly start: StartState | null) {
    this.recorder = new ManifestRecorder((e) => this.add(e));
    if (start) this.merge = new ChangeMerge(this.startEntries(start.manifest), (c) => this.change(c));
  }

  /** Once the archive has been read to its end: the companions and the summary. */
  async finish(): Promise<RecordedChanges> {
    this.recorder.finish();
    const summary = this.merge?.end() ?? null;
    this.manifest.line({ end: { entries: this.entries, omitted: this.recorder.omitted } });
    const manifest = await this.manifest.end();
    if (!this.start || !summary) {
      await this.changes.end();
      return { summary, manifest, changes: null };
    }
    for (const p of this.fromFiles) this.changes.line({ file: p, content: this.start.files[p] });
    let deletedList = DELETED_LIST;
    for (let n = 1; this.listNames.has(deletedList); n++) deletedList = `${DELETED_LIST}.${n}`;
    const trailer: ChangesTrailer = {
      summary,
      changes: this.changeCount,
      fromTask: this.start.fromTask,
      deletedList,
      omitted: this.recorder.omitted,
      unresolvedLinks: this.recorder.unresolvedLinks,
    };
    this.changes.line({ end: trailer });
    return { summary, manifest, changes: await this.changes.end() };
  }

  private add(e: ManifestEntry): void {
    this.entries++;
    if (DELETED_LIST_NAME.test(e.path)) this.listNames.add(e.path);
    this.manifest.line(entryToJson(e));
    this.merge?.push(e);
  }

  private change(c: ChangeRecord): void {
    this.changeCount++;
    this.changes.line({ c: c.change, p: c.path, b: c.before && entryToJson(c.before), a: c.after && entryToJson(c.after) });
    const b = c.before;
    if (b?.type === "file" && b.from === "files" && typeof this.start?.files[c.path] === "string") this.fromFiles.push(c.path);
  }

  private *startEntries(gz: Buffer): Generator<ManifestEntry> {
    for (const line of linesOf(gunzipSync(gz, { maxOutputLength: START_MAX_BYTES }).toString("utf8"))) {
      const o = JSON.parse(line) as EntryJson | { end: unknown };
      if ("end" in o) continue;
      if (DELETED_LIST_NAME.test(o.p)) this.listNames.add(o.p);
      yield entryFromJson(o);
    }
  }
}

/**
 * Stores the recorded companions beside the archive `name` (after the archive itself was published). Returns
 * what could not be stored, with why, for the log; never throws.
 */
export async function storeCompanions(
  store: ArchiveStore,
  name: string,
  recorded: RecordedChanges,
  signal: AbortSignal,
): Promise<{ manifest: string | null; changes: string | null }> {
  const put = async (kind: StoredKind, body: Buffer | null): Promise<string | null> => {
    if (!body) return `larger than ${COMPANION_MAX_BYTES} bytes compressed; not kept`;
    const writer = await store.begin(name, signal, kind).catch((err: unknown) => err as Error);
    if (writer instanceof Error) return writer.message;
    try {
      await writer.write(body);
      await writer.commit({ bytes: body.length, sha256: createHash("sha256").update(body).digest("hex") });
      return null;
    } catch (err) {
      await writer.abort();
      return err instanceof Error ? err.message : String(err);
    }
  };
  const [manifest, changes] = await Promise.all([
    put("manifest", recorded.manifest),
    recorded.summary ? put("changes", recorded.changes) : Promise.resolve("no starting manifest"),
  ]);
  return { manifest, changes };
}

/** A manifest as stored: gzipped JSON lines in path order. */
export async function gzipManifest(entries: readonly ManifestEntry[]): Promise<Buffer> {
  const out = new GzipLines(Number.POSITIVE_INFINITY);
  for (const e of entries) out.line(entryToJson(e));
  out.line({ end: { entries: entries.length, omitted: 0 } });
  return (await out.end()) as Buffer;
}
