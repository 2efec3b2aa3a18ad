// The SDK's reader of Docker's multiplexed framing (raw log following, API.md §5): frames split anywhere.
import { FrameParser } from "../../src/client/output.js";

const frame = (type: number, payload: Buffer) => {
  const header = Buffer.alloc(8);
  header[0] = type;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
};

/** Pieces of the same stream that follow each other are joined. */
function parse(chunks: Buffer[]) {
  const parser = new FrameParser();
  const out: { stream: string; data: Buffer }[] = [];
  for (const c of chunks) {
    for (const p of parser.push(c)) {
      const last = out[out.length - 1];
      if (last && last.stream === p.stream) last.data = Buffer.concat([last.data, p.data]);
      else out.push({ stream: p.stream, data: Buffer.from(p.data) });
    }
  }
  return { out, atBoundary: parser.atBoundary };
}

const OUT = Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x41]); // not UTF-8, a NUL and a newline: kept as they are
const ERR = Buffer.from("err\n");
const body = Buffer.concat([frame(1, OUT), frame(2, ERR), frame(1, Buffer.from("more"))]);
const expected = [
  { stream: "stdout", data: OUT },
  { stream: "stderr", data: ERR },
  { stream: "stdout", data: Buffer.from("more") },
];

describe("FrameParser", () => {
  it("gives each stream's bytes exactly, from one chunk", () => {
    expect(parse([body])).toEqual({ out: expected, atBoundary: true });
  });

  it("gives the same bytes however the body is split, also inside a header", () => {
    for (let cut = 1; cut < body.length; cut++) {
      expect(parse([body.subarray(0, cut), body.subarray(cut)])).toEqual({ out: expected, atBoundary: true });
    }
    expect(parse([...body].map((b) => Buffer.from([b])))).toEqual({ out: expected, atBoundary: true });
  });

  it("says when a body stops inside a frame", () => {
    expect(parse([body.subarray(0, 3)]).atBoundary).toBe(false);
    expect(parse([body.subarray(0, 10)]).atBoundary).toBe(false);
  });

  it("refuses a header that is not Docker's", () => {
    expect(() => new FrameParser().push(frame(3, ERR))).toThrow(/not a multiplexed-stream frame header/);
    const bad = frame(1, ERR);
    bad[2] = 1;
    expect(() => new FrameParser().push(bad)).toThrow(/not a multiplexed-stream frame header/);
  });
});
