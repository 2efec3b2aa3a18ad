// Submit validation of what a task may carry: exec sizes, file trees, and the fingerprint idempotency compares.
import { loadConfig } from "../../src/config/config.js";
import { MAX_ARG_BYTES, MAX_ENGINE_REQUEST_BYTES } from "../../src/domain/command.js";
import { requestFingerprint, validateSubmit } from "../../src/domain/validate.js";

const config = loadConfig({ HOME: "/home/x" });
const problem = (body: unknown) => {
  try {
    validateSubmit(body, config);
  } catch (err) {
    return { message: (err as Error).message, field: (err as { details?: { field?: string } }).details?.field };
  }
  return null;
};

describe("command and env against the kernel's exec limits", () => {
  it("accepts a command up to the limit", () => {
    const arg = "x".repeat(MAX_ARG_BYTES);
    const n = Math.floor(MAX_ENGINE_REQUEST_BYTES / (MAX_ARG_BYTES + 5));
    expect(n).toBe(7);
    expect(problem({ command: Array.from({ length: n }, () => arg) })).toBeNull();
  });

  it("refuses command and env too large for the engine's create request, counting them URL-encoded", () => {
    const ascii = problem({ command: Array.from({ length: 9 }, () => "x".repeat(128_000)) });
    expect(ascii).toMatchObject({ field: "command" });
    expect(ascii?.message).toMatch(/URL-encoded in the container engine's create request, which takes at most 983040/);
    // 120,000 bytes of UTF-8 each, but 360,000 once escaped.
    expect(problem({ command: Array.from({ length: 3 }, () => "é".repeat(60_000)) })).toMatchObject({ field: "command" });
    expect(problem({ command: Array.from({ length: 2 }, () => "é".repeat(60_000)) })).toBeNull();
    const env = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`V${i}`, "y".repeat(120_000)]));
    expect(problem({ command: ["env", "x".repeat(100_000)], env })).toMatchObject({ field: "env" });
  });

  it("refuses strings that are not valid Unicode", () => {
    expect(problem({ command: ["echo", "a\ud800b"] })?.message).toMatch(/lone surrogates/);
    expect(problem({ command: ["env"], env: { A: "\udc00" } })?.message).toMatch(/lone surrogates/);
    expect(problem({ command: ["echo", "😀"] })).toBeNull();
  });

  it("names the argument or variable that is too long for the kernel", () => {
    expect(problem({ command: ["echo", "é".repeat(65_536)] })).toMatchObject({ field: "command.1" });
    expect(problem({ command: ["echo", "é".repeat(65_536)] })?.message).toMatch(/131072 bytes; the kernel takes at most 131071/);
    expect(problem({ command: ["env"], env: { BIG: "x".repeat(MAX_ARG_BYTES) } })).toMatchObject({ field: "env.BIG" });
  });

  it("refuses command and env that together pass ARG_MAX, naming the field that pushed it over", () => {
    const arg = "x".repeat(100_000);
    expect(problem({ command: Array.from({ length: 21 }, () => arg) })).toMatchObject({ field: "command" });
    const env = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`V${i}`, arg]));
    const res = problem({ command: Array.from({ length: 6 }, () => arg), env });
    expect(res).toMatchObject({ field: "env" });
    expect(res?.message).toMatch(/ARG_MAX/);
  });

  it("refuses a huge command array before looking at its strings, and NUL in arguments", () => {
    expect(problem({ command: Array.from({ length: 300_000 }, () => "x") })?.message).toBe(
      "Invalid command: must have at most 256 strings.",
    );
    expect(problem({ command: ["a\0b"] })).toMatchObject({ field: "command.0" });
  });
});

describe("files", () => {
  it("refuses a path that is both a file and the directory of another, at submit", () => {
    const res = problem({ command: ["true"], files: { a: "1", "a/b": "2" } });
    expect(res).toMatchObject({ field: "files" });
    expect(res?.message).toMatch(/"a" is given as a file and also as the directory of "a\/b"/);
    expect(problem({ command: ["true"], files: { "x/y/z": "1", "x/y": "2" } })?.message).toMatch(/"x\/y"/);
    expect(problem({ command: ["true"], files: { "a/b": "1", "a/c": "2", ab: "3" } })).toBeNull();
  });
});

describe("requestFingerprint", () => {
  const fp = (body: unknown) => requestFingerprint(validateSubmit(body, config));

  it("is the same for the same request however its keys are ordered or its defaults spelled", () => {
    const a = fp({ command: ["echo", "hi"], labels: { x: "1", y: "2" }, env: { A: "1", B: "2" } });
    const b = fp({ env: { B: "2", A: "1" }, labels: { y: "2", x: "1" }, command: ["echo", "hi"], timeoutSeconds: 600 });
    expect(a).toBe(b);
  });

  it("differs when the request asks for something else", () => {
    const base = fp({ command: ["echo", "hi"] });
    for (const other of [
      { command: ["echo", "ho"] },
      { command: ["echo", "hi"], env: { A: "1" } },
      { command: ["echo", "hi"], files: { f: "x" } },
      { command: ["echo", "hi"], labels: { k: "v" } },
      { command: ["echo", "hi"], timeoutSeconds: 5 },
    ]) {
      expect(fp(other)).not.toBe(base);
    }
  });
});
