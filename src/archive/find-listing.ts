// Reads the listing GNU find prints for the GNU packer (pack-gnu.ts) and turns it into tar's list of names.
import { Transform } from "node:stream";
import { report, SPECIAL_TYPES, type SkippedPath, tooLarge } from "./packing.js";

/** The `find -printf` format this parser reads: type, size and name (without the leading "./"), each NUL-ended. */
export const FIND_FORMAT = "%y\\0%s\\0%P\\0";

const NUL = Buffer.alloc(1);

/**
 * Splits find's `%y\0%s\0%P\0` records (type, size, name) into what tar archives and what is left out. Kept:
 * directories, symlinks (stored as links) and regular files up to `maxFileBytes`; their names go out as raw bytes,
 * NUL-terminated, for `tar --null --files-from=-`. Everything else is reported in `skipped`, so every path is
 * either archived or reported. A record may span chunks; output that ends inside a record is an error.
 */
export class FindSplitter extends Transform {
  /** Names passed on to tar. */
  listed = 0;
  readonly skipped: SkippedPath[] = [];
  /** The start of a record that continues in the next chunk. */
  private rest: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFileBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, out?: Buffer) => void): void {
    const buf = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    for (;;) {
      const endType = buf.indexOf(0, start);
      const endSize = endType === -1 ? -1 : buf.indexOf(0, endType + 1);
      const endName = endSize === -1 ? -1 : buf.indexOf(0, endSize + 1);
      if (endName === -1) break;
      const name = buf.subarray(endSize + 1, endName);
      if (this.keep(buf.toString("latin1", start, endType), Number(buf.toString("latin1", endType + 1, endSize)), name)) {
        out.push(name, NUL);
      }
      start = endName + 1;
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
    // Lossy for non-UTF-8 names; only used for reporting.
    report(this.skipped, { path: name.toString("utf8"), why });
    return false;
  }
}
