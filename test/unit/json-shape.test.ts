// The JSON shape guard refuses bodies that would block the event loop while they stream in, and leaves every
// well-formed request alone, however its text is chunked.
import { JsonShapeGuard, MAX_JSON_DEPTH, MAX_JSON_ITEMS } from "../../src/api/json-body.js";

const check = (text: string, chunkSize = text.length, guard = new JsonShapeGuard()) => {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += chunkSize) {
    const problem = guard.push(bytes.subarray(i, i + chunkSize));
    if (problem) return problem;
  }
  return null;
};

describe("JsonShapeGuard", () => {
  it("accepts berth's requests, however they are chunked", () => {
    const body = JSON.stringify({
      command: ["sh", "-c", 'echo "[{[{" \\ done'],
      env: { A: "}]}]" },
      files: { "a/b.txt": '\\"[[[[' },
      limits: { memoryMb: 64 },
      labels: { k: "v" },
    });
    for (const size of [1, 2, 3, 7, body.length]) expect(check(body, size)).toBeNull();
  });

  it(`refuses nesting deeper than ${MAX_JSON_DEPTH} levels at the first bracket past it`, () => {
    expect(check(`${"[".repeat(MAX_JSON_DEPTH)}${"]".repeat(MAX_JSON_DEPTH)}`)).toBeNull();
    const guard = new JsonShapeGuard();
    expect(guard.push(Buffer.from("[".repeat(MAX_JSON_DEPTH)))).toBeNull();
    expect(guard.push(Buffer.from("{"))).toMatch(/deeper than 32 levels/);
    expect(check(`{"a":${"[".repeat(10_000_000)}`)).toMatch(/deeper than/);
  });

  it("does not count brackets inside strings, escaped quotes included, across chunk boundaries", () => {
    const text = `["${'\\"['.repeat(100)}"]`;
    for (const size of [1, 2, 5]) expect(check(text, size)).toBeNull();
    expect(check(`["\\\\"${"[".repeat(40)}`, 3)).toMatch(/deeper/); // an escaped backslash ends the string
  });

  it(`refuses more than ${MAX_JSON_ITEMS} values`, () => {
    expect(check(`[${"0,".repeat(MAX_JSON_ITEMS - 2)}0]`)).toBeNull();
    expect(check(`{"files":{${'"a":"",'.repeat(MAX_JSON_ITEMS + 1)}}}`)).toMatch(/more than 100000 values/);
  });
});
