import { DockerFrameParser, type OutputStream } from "../../src/logs/demux.js";

const frame = (type: number, payload: string | Buffer) => {
  const body = typeof payload === "string" ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
};

function collect(chunks: Buffer[]) {
  const out: [OutputStream, string][] = [];
  const parser = new DockerFrameParser((s, p) => out.push([s, p.toString("latin1")]));
  for (const c of chunks) parser.push(c);
  return { out, leftover: parser.leftover };
}

describe("DockerFrameParser", () => {
  it("splits stdout and stderr frames", () => {
    const { out } = collect([Buffer.concat([frame(1, "out\n"), frame(2, "err\n"), frame(1, "more")])]);
    expect(out).toEqual([["stdout", "out\n"], ["stderr", "err\n"], ["stdout", "more"]]);
  });

  it("reassembles frames delivered one byte at a time", () => {
    const all = Buffer.concat([frame(1, "hello"), frame(2, "world")]);
    const bytes = [...all].map((b) => Buffer.from([b]));
    expect(collect(bytes).out).toEqual([["stdout", "hello"], ["stderr", "world"]]);
  });

  it("passes bytes through untouched, including a UTF-8 character split across frames", () => {
    const e = Buffer.from("é");
    const chunks: Buffer[] = [];
    const parser = new DockerFrameParser((_s, p) => chunks.push(Buffer.from(p)));
    parser.push(Buffer.concat([frame(1, e.subarray(0, 1)), frame(1, e.subarray(1))]));
    expect(Buffer.concat(chunks).toString("utf8")).toBe("é");
  });

  it("handles a large frame split across many chunks", () => {
    const big = Buffer.alloc(1_000_000, 0x61);
    const all = frame(1, big);
    const chunks: Buffer[] = [];
    for (let i = 0; i < all.length; i += 65_536) chunks.push(all.subarray(i, i + 65_536));
    const { out } = collect(chunks);
    expect(out).toHaveLength(1);
    expect(out[0]?.[1].length).toBe(1_000_000);
  });

  it("skips empty frames and reports an incomplete trailing frame", () => {
    const { out, leftover } = collect([Buffer.concat([frame(1, ""), frame(1, "x"), frame(2, "partial").subarray(0, 10)])]);
    expect(out).toEqual([["stdout", "x"]]);
    expect(leftover).toBe(10);
  });
});
