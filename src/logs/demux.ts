// Docker's multiplexed attach stream (Tty: false) → (stream, bytes) frames.
// Each frame: 8-byte header [type, 0, 0, 0, size (uint32 BE)] then `size` bytes; type 1 = stdout, 2 = stderr.
// Written here instead of docker-modem's demuxStream because that one ignores back-pressure and validates
// nothing; this parser is pure, so it is unit-tested frame by frame and byte by byte.

export type OutputStream = "stdout" | "stderr";

export class DockerFrameParser {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: OutputStream, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length >= 8) {
      const type = buf[0];
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const payload = buf.subarray(8, 8 + size);
      // 0 is stdin (never attached); anything else is not a frame we asked for. Stdout is the safe bucket.
      if (size > 0) this.onFrame(type === 2 ? "stderr" : "stdout", payload);
      buf = buf.subarray(8 + size);
    }
    // Copy the remainder so the (possibly large) chunk it came from can be freed.
    this.pending = Buffer.from(buf);
  }

  /** Bytes of an incomplete trailing frame (non-zero only if the stream ended mid-frame). */
  get leftover(): number {
    return this.pending.length;
  }
}
