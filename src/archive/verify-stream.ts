// Verifies a new archive while it is being written: every compressed chunk on its way into the store is also fed
// to node-tar's parser (strict: a corrupt or truncated stream fails), and every entry is checked as it passes.
// So the archive is never read back after it is written, and a bad one is refused before it is published.
import { Parser, type ReadEntry } from "tar";
import { errnoOf, TaskFailure } from "../errors.js";
import { isEmptyTarGz } from "./read-archive.js";

const ARCHIVED_TYPES = new Set(["File", "OldFile", "Directory", "SymbolicLink", "Link"]);
const unsafeName = (p: string): boolean => p === "" || p.startsWith("/") || p.split("/").includes("..");
/** The first bytes are kept (no more) to tell an empty archive (only end-of-archive blocks) from a broken one. */
const HEAD_BYTES = 64 * 1024;

/** What a verified archive holds. */
export interface Verified {
  /** Tar entries (files, directories, symlinks, hardlinks). */
  entries: number;
  /** Sum of the regular files' sizes. */
  contentBytes: number;
}

/** Reads a .tar.gz stream chunk by chunk: known entry types only, names relative and without "..". */
export class ArchiveVerifier {
  private entries = 0;
  private contentBytes = 0;
  private failure: unknown;
  private head: Buffer[] | null = [];
  private headBytes = 0;
  private readonly parser: Parser;
  private readonly finished: Promise<void>;

  /** `onEntry` sees every entry that passed the checks, before its bytes flow (archive/manifest-recorder.ts hashes them). */
  constructor(onEntry?: (entry: ReadEntry) => void) {
    this.parser = new Parser({
      strict: true,
      // Deflate cannot exceed ~1032:1, so node-tar's default ratio cap (1000) only rejects legitimate zero-filled
      // files; the archive's timeout and size bound the work instead.
      maxDecompressionRatio: Infinity,
      onReadEntry: (entry: ReadEntry) => {
        if (this.failure === undefined) {
          try {
            this.check(entry);
            onEntry?.(entry);
          } catch (err) {
            this.failure = err;
          }
        }
        entry.resume();
      },
    });
    this.finished = new Promise<void>((resolve) => {
      // Kept for the parser's whole life: an 'error' with no listener would throw.
      this.parser.on("error", (err: unknown) => {
        this.failure ??= err;
        resolve();
      });
      this.parser.on("end", () => resolve());
    });
  }

  /** Feeds the next compressed chunk; throws as soon as the archive is known to be bad, so writing stops early. */
  write(chunk: Buffer): void {
    if (this.head) {
      this.headBytes += chunk.length;
      if (this.headBytes > HEAD_BYTES) this.head = null;
      else this.head.push(chunk);
    }
    if (this.failure === undefined) this.parser.write(chunk);
    if (this.failure !== undefined) throw this.failureError();
  }

  /** Ends the stream; resolves with what it held, or throws TaskFailure `archive_failed` if it is not a sound archive. */
  async end(signal: AbortSignal): Promise<Verified> {
    if (this.failure === undefined) {
      this.parser.end();
      const aborted = new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      await Promise.race([this.finished, aborted]);
      signal.throwIfAborted();
    }
    if (this.failure !== undefined) {
      // node-tar calls an archive of only end-of-archive blocks (GNU tar's output for an empty workspace)
      // "Unrecognized archive format"; accept exactly that case and nothing else.
      const empty = this.entries === 0 && errnoOf(this.failure) === "TAR_BAD_ARCHIVE" && this.head !== null;
      if (!empty || !(await isEmptyTarGz(Buffer.concat(this.head as Buffer[])))) throw this.failureError();
    }
    return { entries: this.entries, contentBytes: this.contentBytes };
  }

  private check(e: ReadEntry): void {
    const fail = (what: string): never => {
      throw new TaskFailure("archive_failed", `The new archive failed verification: ${what} ${JSON.stringify(e.path)}.`);
    };
    if (!ARCHIVED_TYPES.has(e.type)) fail(`unexpected ${e.type} entry`);
    if (unsafeName(e.path)) fail("unsafe entry name");
    // A hardlink's target is another member name; a symlink's target is data, kept verbatim.
    if (e.type === "Link" && unsafeName(e.linkpath ?? "")) fail("unsafe hardlink target in");
    this.entries++;
    if (e.type === "File") this.contentBytes += e.size ?? 0;
  }

  private failureError(): TaskFailure {
    if (this.failure instanceof TaskFailure) return this.failure;
    const msg = this.failure instanceof Error ? this.failure.message : String(this.failure);
    return new TaskFailure("archive_failed", `The new archive failed verification: ${msg}.`, { cause: this.failure });
  }
}
