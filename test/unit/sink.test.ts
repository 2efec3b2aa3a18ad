// writeArchiveStream (src/archive/sink.ts): the compressed stream goes into the sink in order, counted and hashed on
// the way; a sink that fails stops the write.
import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { writeArchiveStream } from "../../src/archive/sink.js";

describe("writeArchiveStream", () => {
  it("hands every chunk to the sink in order and returns their size and sha256", async () => {
    const chunks = Array.from({ length: 50 }, (_, i) => randomBytes(1 + i * 97));
    const received: Buffer[] = [];
    const sink = {
      async write(chunk: Buffer) {
        await new Promise((r) => setImmediate(r)); // a slow sink: the next chunk must wait for this one
        received.push(Buffer.from(chunk));
      },
    };
    const written = await writeArchiveStream(Readable.from(chunks), sink, new AbortController().signal);
    const all = Buffer.concat(chunks);
    expect(Buffer.concat(received).equals(all)).toBe(true);
    expect(written).toEqual({ bytes: all.length, sha256: createHash("sha256").update(all).digest("hex") });
  });

  it("rejects with the sink's error (a full disk) and reads no further", async () => {
    let writes = 0;
    const sink = {
      async write() {
        if (++writes === 3) throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
      },
    };
    const source = Readable.from(Array.from({ length: 100 }, () => Buffer.alloc(16)));
    await expect(writeArchiveStream(source, sink, new AbortController().signal)).rejects.toMatchObject({ code: "ENOSPC" });
    expect(writes).toBe(3);
  });

  it("stops when the signal aborts", async () => {
    const ac = new AbortController();
    const sink = {
      async write() {
        ac.abort(new Error("archive timeout"));
      },
    };
    await expect(writeArchiveStream(Readable.from([Buffer.alloc(1), Buffer.alloc(1)]), sink, ac.signal)).rejects.toThrow();
  });
});
