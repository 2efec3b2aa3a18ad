// The final workspace's manifest, made in the archive pass itself: the verifier (verify-stream.ts) already parses
// every entry of the new archive as it is written, so each file's sha256 is taken from the bytes passing by, and
// the workspace is never walked or read a second time. Both packers list paths in name order (domain/manifest.ts),
// so the manifest comes out in that order, path by path, as the archive is written.
//
// What the archive does not hold as such is heard from the packer's listing (packing.ts ListingObserver): FIFOs,
// sockets and devices (listed, never archived) and files over the per-file bound (listed without a hash) are
// merged in at their place; a hard link (tar stores a file's later names as links to its first) takes its target's
// size and hash, kept for the files the listing said have more than one link.
import { createHash, type Hash } from "node:crypto";
import type { ReadEntry } from "tar";
import { comparePaths, type ManifestEntry, type ManifestEntryType } from "../domain/manifest.js";
import type { ListingObserver } from "./packing.js";

/** Paths left out of the archive waiting for their place, and multi-linked files remembered: at most this many each. */
export const RECORDER_LIMITS = { waiting: 100_000, linked: 100_000 } as const;

const LEFT_TYPES: Record<string, ManifestEntryType> = { p: "fifo", s: "socket", b: "device", c: "device", f: "file" };
const FILE_TYPES = new Set(["File", "OldFile", "ContiguousFile"]);

interface Pending {
  entry: ManifestEntry;
  ready: boolean;
}

export class ManifestRecorder implements ListingObserver {
  /** Paths left out of the archive that could not be kept (over RECORDER_LIMITS.waiting): the manifest lacks them. */
  omitted = 0;
  /** Hard links whose target's hash was not kept (over RECORDER_LIMITS.linked): listed without a hash. */
  unresolvedLinks = 0;
  private readonly waiting: ManifestEntry[] = [];
  private waitingHead = 0;
  private readonly multi = new Set<string>();
  private readonly linked = new Map<string, { size: number; sha256: string | null }>();
  private readonly pending: Pending[] = [];

  constructor(private readonly emit: (e: ManifestEntry) => void) {}

  left(path: string, type: string, size: number): void {
    const t = LEFT_TYPES[type];
    if (!t) return;
    if (this.waiting.length - this.waitingHead >= RECORDER_LIMITS.waiting) {
      this.omitted++;
      return;
    }
    this.waiting.push({ path, type: t, size: t === "file" ? size : 0, mode: null, sha256: null });
  }

  multiLinked(path: string): void {
    if (this.multi.size < RECORDER_LIMITS.linked) this.multi.add(path);
  }

  /** An entry of the archive as the verifier parses it: call before its bytes flow (they are hashed on their way). */
  entry(e: ReadEntry): void {
    const path = e.path.replace(/\/+$/, "");
    this.flushWaiting(path);
    const mode = typeof e.mode === "number" ? e.mode & 0o7777 : null;
    if (e.type === "Directory") {
      this.add({ path, type: "dir", size: 0, mode, sha256: null });
      return;
    }
    if (e.type === "SymbolicLink") {
      const target = e.linkpath ?? "";
      this.add({ path, type: "symlink", size: Buffer.byteLength(target), mode: null, sha256: null, target });
      return;
    }
    if (e.type === "Link") {
      const to = this.linked.get((e.linkpath ?? "").replace(/\/+$/, ""));
      if (!to) this.unresolvedLinks++;
      this.add({ path, type: "file", size: to?.size ?? 0, mode, sha256: to?.sha256 ?? null });
      return;
    }
    if (!FILE_TYPES.has(e.type)) return;
    const item: Pending = { entry: { path, type: "file", size: e.size ?? 0, mode, sha256: null }, ready: false };
    this.pending.push(item);
    const hash: Hash = createHash("sha256");
    e.on("data", (chunk: Buffer) => hash.update(chunk));
    e.on("end", () => {
      item.entry = { ...item.entry, sha256: hash.digest("hex") };
      if (this.multi.has(path)) this.linked.set(path, { size: item.entry.size, sha256: item.entry.sha256 });
      item.ready = true;
      this.flushPending();
    });
  }

  /** After the last entry: everything still waiting. */
  finish(): void {
    this.flushWaiting(null);
    this.flushPending();
  }

  private add(entry: ManifestEntry): void {
    // In order behind a file whose bytes are still being hashed (never more than one: entries come one after another).
    if (this.pending.length === 0) this.emit(entry);
    else this.pending.push({ entry, ready: true });
  }

  /** Emits the paths left out of the archive that sort before `path` (all of them for null). */
  private flushWaiting(path: string | null): void {
    while (this.waitingHead < this.waiting.length) {
      const w = this.waiting[this.waitingHead] as ManifestEntry;
      if (path !== null && comparePaths(w.path, path) >= 0) break;
      this.waitingHead++;
      this.add(w);
    }
    if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
      this.waiting.splice(0, this.waitingHead);
      this.waitingHead = 0;
    }
  }

  private flushPending(): void {
    while (this.pending.length > 0 && (this.pending[0] as Pending).ready) this.emit((this.pending.shift() as Pending).entry);
  }
}
