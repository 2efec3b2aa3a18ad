// Command and env sizes against the kernel's exec limits, and the short form of a long command in lists.
import { execa } from "execa";
import {
  ARG_MAX_BYTES,
  COMMAND_PREVIEW_BYTES,
  execBytes,
  MAX_ARG_BYTES,
  MAX_EXEC_BYTES,
  previewCommand,
} from "../../src/domain/command.js";

describe("exec size", () => {
  it("counts each string's UTF-8 bytes, its NUL and a pointer, for argv and NAME=value alike", () => {
    expect(execBytes(["sh", "é"], {})).toBe(2 + 1 + 8 + (2 + 1 + 8));
    expect(execBytes([], { A: "bc" })).toBe(4 + 1 + 8);
  });

  it("stays within this machine's ARG_MAX and MAX_ARG_STRLEN", async () => {
    const { stdout } = await execa("getconf", ["ARG_MAX"]);
    expect(ARG_MAX_BYTES).toBeLessThanOrEqual(Number(stdout));
    expect(MAX_EXEC_BYTES).toBeLessThan(ARG_MAX_BYTES);
    expect(MAX_ARG_BYTES).toBe(131_071);
  });
});

describe("previewCommand", () => {
  it("leaves a short command alone", () => {
    expect(previewCommand(["echo", "hi"])).toBeNull();
  });

  it("keeps the start of a long command within the preview size, marking the cut", () => {
    const preview = previewCommand(["sh", "-c", "x".repeat(100_000), "never shown"]) as string[];
    expect(preview.slice(0, 2)).toEqual(["sh", "-c"]);
    expect(preview).toHaveLength(3);
    expect(preview[2]).toMatch(/^x+…$/);
    expect(Buffer.byteLength(JSON.stringify(preview))).toBeLessThanOrEqual(COMMAND_PREVIEW_BYTES);
  });

  it("stays within the size whatever the arguments hold (escapes, multi-byte, many arguments)", () => {
    for (const command of [
      ["\u0001".repeat(5000)],
      ["é".repeat(5000)],
      Array.from({ length: 256 }, (_, i) => `argument-${i}`),
      ["a", "\n".repeat(3000)],
    ]) {
      const preview = previewCommand(command) as string[];
      expect(Buffer.byteLength(JSON.stringify(preview))).toBeLessThanOrEqual(COMMAND_PREVIEW_BYTES);
      expect(preview.length).toBeGreaterThan(0);
    }
  });
});
