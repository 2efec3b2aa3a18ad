// Docker's multiplexed attach stream (Tty: false) → (stream, bytes) pieces.
// Each frame: 8-byte header [type, 0, 0, 0, size (uint32 BE)] then `size` bytes; type 1 = stdout, 2 = stderr.
// Written here instead of docker-modem's demuxStream because that one ignores back-pressure and validates
// nothing; this parser is pure, so it is unit-tested frame by frame and byte by byte.
//
// Payload bytes are handed on as views of the chunks they arrived in, never copied: a frame that spans several
// chunks arrives as several pieces of the same stream, in order. Only a header split across chunks is copied.

export type OutputStream = "stdout" | "stderr";

export class DockerFrameParser {
  /** Bytes of a header that began at the end of an earlier chunk. */
  private header = Buffer.alloc(8);
  private headerBytes = 0;
  /** Payload bytes still to come for the current frame, and its stream. */
  private remaining = 0;
  private stream: OutputStream = "stdout";

  constructor(private readonly onFrame: (stream: OutputStream, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining > 0) {
        const end = Math.min(chunk.length, at + this.remaining);
        this.remaining -= end - at;
        this.onFrame(this.stream, chunk.subarray(at, end));
        at = end;
        continue;
      }
      // A header: whole in this chunk (the common case), or completed from an earlier chunk's tail.
      let header: Buffer;
      if (this.headerBytes === 0 && chunk.length - at >= 8) {
        header = chunk.subarray(at, at + 8);
        at += 8;
      } else {
        const take = Math.min(8 - this.headerBytes, chunk.length - at);
        chunk.copy(this.header, this.headerBytes, at, at + take);
        this.headerBytes += take;
        at += take;
        if (this.headerBytes < 8) return;
        header = this.header;
        this.headerBytes = 0;
      }
      // 0 is stdin (never attached); anything else is not a frame we asked for. Stdout is the safe bucket.
      this.stream = header[0] === 2 ? "stderr" : "stdout";
      this.remaining = header.readUInt32BE(4);
    }
  }

  /** Whether the stream so far ends inside a frame (a header or payload is incomplete). */
  get midFrame(): boolean {
    return this.headerBytes > 0 || this.remaining > 0;
  }
}
