// What both packers (pack-inprocess.ts, pack-gnu.ts) share: how they report the paths they leave out, and what
// they hand back to createArchive.
import type { Written } from "./sink.js";

/** A workspace path that is not in the archive, and why. */
export interface SkippedPath {
  path: string;
  why: string;
}

/** What a packer wrote into the sink, and what it archived. */
export interface PackedArchive extends Written {
  /** Names tar was asked to archive. */
  listed: number;
  skipped: SkippedPath[];
  /** Listed names tar reported it could not read. */
  unreadable: SkippedPath[];
}

/**
 * Hears what a packer lists but the archive will not show as such, in the order of the archive's names (a
 * workspace's manifest is made of the archive's entries and of these: archive/manifest-recorder.ts).
 */
export interface ListingObserver {
  /** A path left out of the archive: `type` is find's `%y` letter (p, s, b, c, f for a file over the size bound). */
  left(path: string, type: string, size: number): void;
  /** A regular file with more than one link: tar stores its later names as hard links to its first. */
  multiLinked(path: string): void;
}

/** Cap on a `skipped` list, so a workspace with a million FIFOs cannot blow up the task record. */
const MAX_REPORTED = 1000;

/** Adds `item` to `list` unless the list is full. */
export function report(list: SkippedPath[], item: SkippedPath): void {
  if (list.length < MAX_REPORTED) list.push(item);
}

/** File types never archived, by find's `%y` letter. */
export const SPECIAL_TYPES: Record<string, string> = { p: "named pipe (FIFO)", s: "socket", b: "block device", c: "character device" };

export const tooLarge = (maxFileBytes: number, size: number) => `file larger than ${maxFileBytes} bytes (${size} bytes)`;
