// safe-path against the real filesystem (no Docker): every way a task could make the server read or list a
// host file through a link it planted, or hang on a FIFO, must end in not_found / a skipped entry.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, mkdtemp, realpath, rename, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { isBerthError } from "../../src/errors.js";
import {
  _openVerified,
  _walkParents,
  listWorkspace,
  openWorkspaceFile,
  parseRelativePath,
  resolveInside,
} from "../../src/workspace/safe-path.js";
import { within } from "../helpers/wait-for.js";

/** Resolves to the BerthError code a call failed with (or "ok"). */
const codeOf = async (p: Promise<unknown> | (() => unknown)): Promise<string> => {
  try {
    const value = typeof p === "function" ? p() : await p;
    if (value && typeof value === "object" && "handle" in value) await (value as { handle: { close(): Promise<void> } }).handle.close();
    return "ok";
  } catch (err) {
    if (isBerthError(err)) return err.code;
    throw err;
  }
};

const readAll = async (root: string, rel: string): Promise<Buffer> => {
  const { handle } = await openWorkspaceFile(root, rel);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
};

/**
 * Runs `step` (with paths a, b, c) in a tight loop in another process, like a racing container; resolves once it
 * runs. Stop it with the function returned (it gives up by itself after two minutes, should a test die first).
 */
const startSwapper = async (step: string, [a, b, c]: string[]): Promise<() => void> => {
  const script = `const fs = require("fs"); const [a, b, c] = process.argv.slice(1); process.stdout.write("ready");
    const end = Date.now() + 120000; while (Date.now() < end) { try { ${step} } catch {} }`;
  const child = spawn(process.execPath, ["-e", script, a ?? "", b ?? "", c ?? ""], { stdio: ["ignore", "pipe", "ignore"] });
  await new Promise((resolve, reject) => {
    child.stdout.once("data", resolve);
    child.once("error", reject);
  });
  return () => void child.kill("SIGKILL");
};

let tmp: string; // holds ws/ (the workspace) and canary/ (a "host" directory outside it)
let ws: string;
let canary: string;
const payload = randomBytes(70_000);

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "berth-safe-path-"));
  ws = path.join(tmp, "ws");
  canary = path.join(tmp, "canary");
  await mkdir(path.join(ws, "data", "sub"), { recursive: true });
  await mkdir(canary);
  await writeFile(path.join(canary, "secret.txt"), "CANARY");
  await writeFile(path.join(ws, "data", "sub", "file.bin"), payload);
  await writeFile(path.join(ws, "a.txt"), "abc");
  await symlink("/etc/passwd", path.join(ws, "passwd"));
  await symlink("/etc", path.join(ws, "etc-link"));
  await symlink("data/sub/file.bin", path.join(ws, "inner-link")); // points inside: still refused
  await symlink(canary, path.join(ws, "canary-link"));
  execFileSync("mkfifo", [path.join(ws, "pipe")]);
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("parseRelativePath", () => {
  it("splits ordinary paths and tolerates one trailing slash", () => {
    expect(parseRelativePath("data/sub/file.bin")).toEqual(["data", "sub", "file.bin"]);
    expect(parseRelativePath("data/")).toEqual(["data"]);
    expect(parseRelativePath("")).toEqual([]);
    expect(parseRelativePath("...")).toEqual(["..."]);
    expect(parseRelativePath("100%.txt")).toEqual(["100%.txt"]);
    expect(parseRelativePath("résumé.txt")).toEqual(["résumé.txt"]);
  });

  it.each([
    "..",
    "../x",
    "a/../../etc/passwd",
    "a/..",
    "./a",
    "a/./b",
    "%2e%2e/x",
    "%2E%2E/x",
    "a/%2e%2e",
    "%252e%252e/etc/passwd",
    "a%2fb",
    "%c0%ae%c0%ae/x",
    "/etc/passwd",
    "//etc/passwd",
    "a\\..\\..\\etc",
    "a\0b",
    "file.txt%00.png",
  ])("refuses traversal %j as not_found", async (raw) => {
    expect(await codeOf(() => parseRelativePath(raw))).toBe("not_found");
  });

  it.each([
    ["an empty component", "a//b"],
    ["a 256-byte component", "x".repeat(256)],
    ["a path over 4096 bytes", `${"x/".repeat(2100)}x`],
    ["a lone surrogate", "a\uD800b"],
  ])("refuses %s as invalid_input", async (_what, raw) => {
    expect(await codeOf(() => parseRelativePath(raw))).toBe("invalid_input");
  });

  it("counts the 255-byte component limit in UTF-8 bytes", async () => {
    expect(await codeOf(() => parseRelativePath("é".repeat(127)))).toBe("ok"); // 254 bytes
    expect(await codeOf(() => parseRelativePath("é".repeat(128)))).toBe("invalid_input"); // 256 bytes
  });
});

describe("resolveInside", () => {
  it("joins under the root and refuses anything that would leave it", async () => {
    expect(resolveInside("/srv/ws/", "a/b.txt")).toBe("/srv/ws/a/b.txt");
    expect(resolveInside("/srv/ws", "")).toBe("/srv/ws");
    expect(await codeOf(() => resolveInside("/srv/ws", "../ws2/x"))).toBe("not_found");
    expect(await codeOf(() => resolveInside("/srv/ws", "/etc/passwd"))).toBe("not_found");
  });
});

describe("openWorkspaceFile", () => {
  it("reads a nested regular file back byte-exact", async () => {
    const { handle, size } = await openWorkspaceFile(ws, "data/sub/file.bin");
    try {
      expect(size).toBe(payload.length);
      expect((await handle.readFile()).equals(payload)).toBe(true);
    } finally {
      await handle.close();
    }
  });

  it.each([
    ["a symlink to /etc/passwd", "passwd"],
    ["a path through a symlinked directory", "etc-link/passwd"],
    ["a symlinked directory itself", "etc-link"],
    ["a symlink to a file inside the workspace", "inner-link"],
    ["a path through a link to a sibling directory", "canary-link/secret.txt"],
    ["a missing file", "nope.txt"],
    ["a file used as a directory", "a.txt/x"],
    ["traversal", "data/../../canary/secret.txt"],
  ])("refuses %s as not_found", async (_what, rel) => {
    expect(await codeOf(openWorkspaceFile(ws, rel))).toBe("not_found");
  });

  it("refuses a FIFO without blocking on it", async () => {
    // Opening a FIFO for reading blocks until a writer comes, and none ever will.
    expect(await within(codeOf(openWorkspaceFile(ws, "pipe")), 30_000, "the FIFO to be refused")).toBe("not_found");
  });

  it("refuses directories as invalid_input", async () => {
    expect(await codeOf(openWorkspaceFile(ws, "data"))).toBe("invalid_input");
    expect(await codeOf(openWorkspaceFile(ws, "data/"))).toBe("invalid_input");
    expect(await codeOf(openWorkspaceFile(ws, ""))).toBe("invalid_input");
  });

  it("refuses a parent swapped for a symlink between the walk and the open (/proc/self/fd check)", async () => {
    const race = path.join(tmp, "race-ws");
    await mkdir(path.join(race, "sub"), { recursive: true });
    await writeFile(path.join(race, "sub", "secret.txt"), "workspace");
    const rootReal = await realpath(race);
    const parts = ["sub", "secret.txt"];

    await _walkParents(rootReal, parts, "sub/secret.txt"); // the tree is clean at walk time
    await rename(path.join(race, "sub"), path.join(race, "sub-old"));
    await symlink(canary, path.join(race, "sub")); // canary/secret.txt exists, same name
    let leaked: Buffer | undefined;
    const code = await codeOf(
      _openVerified(rootReal, parts, "sub/secret.txt").then(async (r) => {
        leaked = await r.handle.readFile();
        return r;
      }),
    );
    expect(code).toBe("not_found");
    expect(leaked).toBeUndefined();
    // And the full entry point refuses it at the walk.
    expect(await codeOf(openWorkspaceFile(race, "sub/secret.txt"))).toBe("not_found");
  });

  it("never returns canary bytes while another process keeps swapping a directory and a symlink", async () => {
    const race = path.join(tmp, "live-race");
    await mkdir(path.join(race, "sub"), { recursive: true });
    await writeFile(path.join(race, "sub", "secret.txt"), "workspace");
    const rootReal = await realpath(race);
    const parts = ["sub", "secret.txt"];
    const stop = await startSwapper("fs.renameSync(a, b); fs.symlinkSync(c, a); fs.unlinkSync(a); fs.renameSync(b, a);", [
      path.join(race, "sub"),
      path.join(race, "park"),
      canary,
    ]);
    const seen = new Map<string, number>();
    const count = (k: string): void => void seen.set(k, (seen.get(k) ?? 0) + 1);
    try {
      // Run until the /proc/self/fd check has provably fired a few times (walk passed, then a swap), and for at
      // least 200 rounds; a machine that never hits that window gives up after a minute of trying (and fails below).
      const giveUpAt = Date.now() + 60_000;
      for (let round = 0; ((seen.get("caught after walk") ?? 0) < 5 || round < 200) && Date.now() < giveUpAt; round++) {
        try {
          await _walkParents(rootReal, parts, "sub/secret.txt");
        } catch {
          count("refused at walk");
          continue;
        }
        try {
          const { handle } = await _openVerified(rootReal, parts, "sub/secret.txt");
          count((await handle.readFile()).toString());
          await handle.close();
        } catch (err) {
          if (!isBerthError(err) || err.code !== "not_found") throw err;
          count(err.message.includes("symbolic link") ? "caught after walk" : "vanished");
        }
        try {
          count(`e2e:${(await readAll(race, "sub/secret.txt")).toString()}`);
        } catch (err) {
          if (!isBerthError(err) || err.code !== "not_found") throw err;
        }
        if (Math.random() < 0.02) {
          const listing = await listWorkspace(race);
          expect(listing.files.map((f) => f.path)).not.toContain("sub/CANARY-ONLY");
        }
      }
    } finally {
      stop();
    }
    expect(seen.get("CANARY")).toBeUndefined();
    expect(seen.get("e2e:CANARY")).toBeUndefined();
    expect(seen.get("caught after walk")).toBeGreaterThan(0); // the race window was really hit
  }, 120_000);

  it("never blocks when a file is swapped for a FIFO after the pre-open lstat", async () => {
    const race = path.join(tmp, "fifo-race");
    await mkdir(race);
    await writeFile(path.join(race, "f"), "regular");
    execFileSync("mkfifo", [path.join(race, "fifo")]);
    const stop = await startSwapper(
      "fs.renameSync(a, c); fs.renameSync(b, a); fs.renameSync(a, b); fs.renameSync(c, a);",
      ["f", "fifo", "park"].map((n) => path.join(race, n)),
    );
    const seen = new Set<string>();
    try {
      // A blocked open would hang here (and fail at the test's timeout).
      for (let round = 0; round < 500; round++) seen.add(await codeOf(openWorkspaceFile(race, "f")));
    } finally {
      stop();
    }
    expect([...seen].every((c) => c === "ok" || c === "not_found")).toBe(true);
  }, 60_000);
});

describe("listWorkspace", () => {
  let lw: string;

  beforeAll(async () => {
    lw = path.join(tmp, "list-ws");
    await mkdir(path.join(lw, "d", "e", "f"), { recursive: true });
    await writeFile(path.join(lw, "a.txt"), "abc");
    await writeFile(path.join(lw, "d", "b.txt"), "hello");
    await writeFile(path.join(lw, "d", "e", "f", "deep.txt"), "x");
    await symlink("/etc", path.join(lw, "etc-link"));
    execFileSync("mkfifo", [path.join(lw, "d", "pipe")]);
    await writeFile(Buffer.from(path.join(lw, "bad-\xff-name"), "latin1"), "x"); // 0xFF: not valid UTF-8
    await mkdir(path.join(lw, "locked"));
    await writeFile(path.join(lw, "locked", "inside.txt"), "x");
    await chmod(path.join(lw, "locked"), 0o000);
    await writeFile(path.join(canary, "CANARY-ONLY"), "x");
  });

  afterAll(async () => {
    await chmod(path.join(lw, "locked"), 0o755);
  });

  it("lists files, dirs and symlinks (not descended), skips FIFOs and non-UTF-8 names, sorted", async () => {
    const { files, truncated } = await listWorkspace(lw);
    expect(truncated).toBe(false);
    const paths = files.map((f) => f.path);
    expect(paths).toEqual([...paths].sort());
    expect(files).toContainEqual({ path: "a.txt", type: "file", size: 3 });
    expect(files).toContainEqual({ path: "d", type: "dir", size: 0 });
    expect(files).toContainEqual({ path: "d/b.txt", type: "file", size: 5 });
    expect(files).toContainEqual({ path: "d/e/f/deep.txt", type: "file", size: 1 });
    expect(files).toContainEqual({ path: "etc-link", type: "symlink", size: "/etc".length });
    expect(files).toContainEqual({ path: "locked", type: "dir", size: 0 });
    expect(paths.some((p) => p.startsWith("etc-link/"))).toBe(false);
    expect(paths).not.toContain("d/pipe");
    expect(paths.some((p) => p.startsWith("bad-"))).toBe(false);
    // Running as root, a mode-000 directory is still readable; as another user it is skipped. Either way no crash.
    if (process.getuid?.() !== 0) expect(paths).not.toContain("locked/inside.txt");
  }, 5_000);

  it("stops at maxEntries and says it truncated", async () => {
    const many = path.join(tmp, "many");
    await mkdir(many);
    await Promise.all(Array.from({ length: 30 }, (_, i) => writeFile(path.join(many, `f${i}`), "")));
    const { files, truncated } = await listWorkspace(many, { maxEntries: 10 });
    expect(files).toHaveLength(10);
    expect(truncated).toBe(true);
    expect(await listWorkspace(many, { maxEntries: 30 })).toMatchObject({ truncated: false });
  });

  it("stops at maxDepth and says it truncated", async () => {
    const { files, truncated } = await listWorkspace(lw, { maxDepth: 1 });
    expect(truncated).toBe(true);
    expect(files.every((f) => !f.path.includes("/"))).toBe(true);
    expect(files.map((f) => f.path)).toContain("d");
  });

  it("answers not_found for a workspace that does not exist", async () => {
    expect(await codeOf(listWorkspace(path.join(tmp, "gone")))).toBe("not_found");
  });
});
