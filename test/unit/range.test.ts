// rangeOf (src/api/range.ts): which bytes of an archive a download gets for its Range and If-Range headers.
import { rangeOf } from "../../src/api/range.js";

const ETAG = `"${"a".repeat(64)}"`;
const of = (range?: string, ifRange?: string, size = 1000) => rangeOf(range, ifRange, ETAG, size);

describe("rangeOf", () => {
  it("gives everything without a Range", () => {
    expect(of()).toEqual({ kind: "all" });
  });

  it("reads one range: closed, open-ended, a suffix, and clamps its end to the size", () => {
    expect(of("bytes=10-99")).toEqual({ kind: "range", start: 10, end: 99 });
    expect(of("bytes=990-")).toEqual({ kind: "range", start: 990, end: 999 });
    expect(of("bytes=-100")).toEqual({ kind: "range", start: 900, end: 999 });
    expect(of("bytes=-5000")).toEqual({ kind: "range", start: 0, end: 999 });
    expect(of("bytes=500-5000")).toEqual({ kind: "range", start: 500, end: 999 });
    expect(of("bytes=0-0")).toEqual({ kind: "range", start: 0, end: 0 });
  });

  it("answers unsatisfiable for a range that starts past the end", () => {
    expect(of("bytes=1000-")).toEqual({ kind: "unsatisfiable" });
    expect(of("bytes=5000-6000")).toEqual({ kind: "unsatisfiable" });
    expect(of("bytes=-0")).toEqual({ kind: "unsatisfiable" });
  });

  it("ignores a header that does not parse, another unit, and several ranges that do not merge", () => {
    for (const h of ["bytes=abc", "bytes=5-2", "bytes=", "items=0-5", "0-5", "bytes=0-9,100-199"])
      expect([h, of(h)]).toEqual([h, { kind: "all" }]);
    expect(of("bytes=0-9,10-19")).toEqual({ kind: "range", start: 0, end: 19 });
  });

  it("honours If-Range only when it is exactly the archive's ETag", () => {
    expect(of("bytes=0-9", ETAG)).toEqual({ kind: "range", start: 0, end: 9 });
    for (const other of ['"b"', `W/${ETAG}`, "Tue, 01 Dec 2026 10:00:00 GMT", ETAG.slice(1, -1)]) {
      expect(of("bytes=0-9", other)).toEqual({ kind: "all" });
    }
  });
});
