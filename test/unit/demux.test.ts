import { DockerFrameParser, type OutputStream } from "../../src/logs/demux.js";

const frame = (type: number, payload: string | Buffer) => {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
};

/** Pieces of the same stream that follow each other are joined: a frame may arrive in several pieces. */
function collect(chunks: Buffer[]) {
  const out: [OutputStream, string][] = [];
  const parser = new DockerFrameParser((s, p) => {
    const last = out[out.length - 1];
    if (last && last[0] === s) last[1] += p.toString("latin1");
    else out.push([s, p.toString("latin1")]);
  });
  for (const c of chunks) parser.push(c);
  return { out, midFrame: parser.midFrame };
}

describe("DockerFrameParser", () => {
  it("splits stdout and stderr frames", () => {
    const { out } = collect([Buffer.concat([frame(1, "out\n"), frame(2, "err\n"), frame(1, "more")])]);
    expect(out).toEqual([
      ["stdout", "out\n"],
      ["stderr", "err\n"],
      ["stdout", "more"],
    ]);
  });

  it("reassembles frames delivered one byte at a time", () => {
    const all = Buffer.concat([frame(1, "hello"), frame(2, "world")]);
    const bytes = [...all].map((b) => Buffer.from([b]));
    expect(collect(bytes).out).toEqual([
      ["stdout", "hello"],
      ["stderr", "world"],
    ]);
  });

  it("passes bytes through untouched, including a UTF-8 character split across frames", () => {
    const e = Buffer.from("é");
    const chunks: Buffer[] = [];
    const parser = new DockerFrameParser((_s, p) => chunks.push(Buffer.from(p)));
    parser.push(Buffer.concat([frame(1, e.subarray(0, 1)), frame(1, e.subarray(1))]));
    expect(Buffer.concat(chunks).toString("utf8")).toBe("é");
  });

  it("hands on a large frame split across many chunks as views of those chunks, without copying", () => {
    const big = Buffer.alloc(1_000_000, 0x61);
    const all = frame(1, big);
    const chunks: Buffer[] = [];
    for (let i = 0; i < all.length; i += 65_536) chunks.push(all.subarray(i, i + 65_536));
    const views: Buffer[] = [];
    const parser = new DockerFrameParser((_s, p) => views.push(p));
    for (const c of chunks) parser.push(c);
    expect(Buffer.concat(views).equals(big)).toBe(true);
    expect(views.every((v) => v.buffer === all.buffer)).toBe(true);
    expect(parser.midFrame).toBe(false);
  });

  it("reassembles a header split across chunks at every position", () => {
    const all = Buffer.concat([frame(1, "ab"), frame(2, "cd"), frame(1, "ef")]);
    for (let cut = 1; cut < all.length; cut++) {
      expect(collect([all.subarray(0, cut), all.subarray(cut)]).out).toEqual([
        ["stdout", "ab"],
        ["stderr", "cd"],
        ["stdout", "ef"],
      ]);
    }
  });

  it("skips empty frames and says when the stream ends inside a frame", () => {
    const cut = collect([Buffer.concat([frame(1, ""), frame(1, "x"), frame(2, "partial").subarray(0, 10)])]);
    expect(cut.out).toEqual([
      ["stdout", "x"],
      ["stderr", "pa"],
    ]);
    expect(cut.midFrame).toBe(true);
    expect(collect([frame(1, "x"), frame(2, "partial").subarray(0, 5)]).midFrame).toBe(true);
    expect(collect([frame(1, "x")]).midFrame).toBe(false);
  });
});
