// Reads the listing GNU find prints for the GNU packer (pack-gnu.ts) and turns it into tar's list of names.
import { Transform } from "node:stream";
import { type ListingObserver, report, SPECIAL_TYPES, type SkippedPath, tooLarge } from "./packing.js";

/**
 * The `find -printf` format this parser reads: type, size, link count and name (without the leading "./"), one
 * NUL-ended record per path, so that `sort -z -t ' ' -k4` orders the records by name.
 */
export const FIND_FORMAT = "%y %s %n %P\\0";

const NUL = Buffer.alloc(1);
const SPACE = 0x20;

/**
 * Splits find's `%y %s %n %P\0` records (type, size, link count, name) into what tar archives and what is left
 * out. Kept: directories, symlinks (stored as links) and regular files up to `maxFileBytes`; their names go out as
 * raw bytes, NUL-terminated, for `tar --null --files-from=-`. Everything else is reported in `skipped`, so every
 * path is either archived or reported; `observer` hears of every path left out and every file with more than one
 * link. A record may span chunks; output that ends inside a record is an error.
 */
export class FindSplitter extends Transform {
  /** Names passed on to tar. */
  listed = 0;
  readonly skipped: SkippedPath[] = [];
  /** The start of a record that continues in the next chunk. */
  private rest: Buffer = Buffer.alloc(0);

  constructor(
    private readonly maxFileBytes: number,
    private readonly observer?: ListingObserver,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, out?: Buffer) => void): void {
    const buf = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const end = buf.indexOf(0, start);
      if (end === -1) break;
      // Type, size and link count have no spaces; the name, after the third space, may hold anything but NUL.
      const endType = buf.indexOf(SPACE, start);
      const endSize = endType === -1 || endType >= end ? -1 : buf.indexOf(SPACE, endType + 1);
      const endLinks = endSize === -1 || endSize >= end ? -1 : buf.indexOf(SPACE, endSize + 1);
      if (endLinks === -1 || endLinks >= end) {
        cb(new Error(`find printed a record that is not "type size links name": ${JSON.stringify(buf.toString("latin1", start, end))}`));
        return;
      }
      const name = buf.subarray(endLinks + 1, end);
      const type = buf.toString("latin1", start, endType);
      const size = Number(buf.toString("latin1", endType + 1, endSize));
      if (this.keep(type, size, name)) {
        out.push(name, NUL);
        if (type === "f" && buf.toString("latin1", endSize + 1, endLinks) !== "1") this.observer?.multiLinked(name.toString("utf8"));
      }
      start = end + 1;
    }
    this.rest = Buffer.from(buf.subarray(start));
    cb(null, out.length > 0 ? Buffer.concat(out) : undefined);
  }

  override _flush(cb: (err?: Error | null) => void): void {
    cb(this.rest.length > 0 ? new Error("find's output ended inside a record") : null);
  }

  private keep(type: string, size: number, name: Buffer): boolean {
    if (type === "d" || type === "l" || (type === "f" && size <= this.maxFileBytes)) {
      this.listed++;
      return true;
    }
    const special = SPECIAL_TYPES[type];
    const why = type === "f" ? tooLarge(this.maxFileBytes, size) : `${special ?? `file type "${type}"`} not archived`;
    // Lossy for non-UTF-8 names (as node-tar reads names): used for reporting and the manifest.
    const path = name.toString("utf8");
    report(this.skipped, { path, why });
    this.observer?.left(path, type, size);
    return false;
  }
}
