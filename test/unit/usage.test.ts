// What the disk limit counts (src/workspace/usage.ts): a walk of the workspace, and the same figure for a fresh
// workspace's inputs computed without walking (the watcher's starting point).
import { mkdir, mkdtemp, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { inputBytes, measureWorkspace } from "../../src/workspace/usage.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "berth-usage-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const write = async (files: Record<string, string>) => {
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
};

it("counts each entry at its size in whole blocks, at least one, and sparse files at their full size", async () => {
  await write({ "a.txt": "x", "d/e/b.bin": "y".repeat(5000) });
  await symlink("/etc/passwd", path.join(dir, "link"));
  await writeFile(path.join(dir, "sparse"), "");
  await truncate(path.join(dir, "sparse"), 10 * 1024 * 1024);
  // workspace, a.txt, d, d/e, link: a block each; b.bin: 2 blocks; sparse: 10 MiB apparent, no blocks.
  expect(await measureWorkspace(dir)).toEqual({ bytes: 4096 * 7 + 10 * 1024 * 1024, entries: 7 });
});

it("knows what freshly written inputs hold without walking them", async () => {
  const files = { "a.txt": "x", "d/e/b.bin": "y".repeat(5000), "d/c.txt": "", "empty/x": "é".repeat(3000) };
  await write(files);
  expect(inputBytes(files)).toBe((await measureWorkspace(dir)).bytes);
  expect(inputBytes({})).toBe(4096);
});
