// Where an archive's compressed bytes go. Both packers write their .tar.gz stream through writeArchiveStream, which
// counts and hashes every chunk on its way into the sink: the one place to tee the stream elsewhere as it is
// written (an upload, a second hash), without reading the finished file again.
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

/** Receives the .tar.gz bytes in order; the next chunk comes only once `write` has resolved. */
export interface ArchiveSink {
  write(chunk: Buffer): Promise<void>;
}

/** What went into a sink: its size and hex sha256. */
export interface Written {
  bytes: number;
  sha256: string;
}

/** A sink that appends to an open file (the archive's temp file). */
export function fileSink(fh: FileHandle): ArchiveSink {
  // writeFile(), not write(): it loops over short writes.
  return { write: (chunk) => fh.writeFile(chunk) };
}

/** Writes the compressed stream `gz` into `sink`, hashing and counting the bytes as they pass. */
export async function writeArchiveStream(gz: Readable, sink: ArchiveSink, signal: AbortSignal): Promise<Written> {
  const hash = createHash("sha256");
  let bytes = 0;
  // A plain Writable: fs.WriteStream with autoClose:false never emits 'close', which makes stream.pipeline wait forever.
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      sink.write(chunk).then(() => cb(), cb);
    },
  });
  await pipeline(gz, out, { signal });
  return { bytes, sha256: hash.digest("hex") };
}
