// Workspace archiving and seeding on the real filesystem (no Docker). Runs as root here, like the worker.
import { afterAll, beforeAll, describe, expect, it } from "@jest/globals";
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { execa } from "execa";
import { Header } from "tar";
import { createArchive, type ArchiveOptions } from "../../src/archive/archive.js";
import { LocalArchiveStore } from "../../src/archive/local-store.js";
import { classifyStderr } from "../../src/archive/gnu-stderr.js";
import { IN_PROCESS_LIMITS } from "../../src/archive/pack-inprocess.js";
import { listArchive } from "../../src/archive/read-archive.js";
import { extractArchive } from "../../src/archive/extract.js";
import { TaskFailure } from "../../src/errors.js";
import { within } from "../helpers/wait-for.js";

let root: string;
let n = 0;
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "berth-archive-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh directory under the test root. */
const freshDir = (name: string): string => {
  const dir = path.join(root, `${name}-${++n}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
};
/** Writes files (relative name -> content) into a fresh workspace. */
const workspace = (files: Record<string, string | Buffer> = {}): string => {
  const ws = freshDir("ws");
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
    fs.writeFileSync(path.join(ws, rel), content);
  }
  return ws;
};
/** The archive's name in the store: a workspace name, as berth makes them. */
const NAME = "task-1700000000000-archivetest01";
/** Archives `ws` into a local store in a fresh directory. */
const archive = (ws: string, extra: Partial<ArchiveOptions> = {}) => {
  const outDir = path.join(freshDir("out"), "archives");
  const archivePath = path.join(outDir, `${NAME}.tar.gz`);
  return {
    outDir,
    archivePath,
    run: () => createArchive({ workspacePath: ws, store: new LocalArchiveStore(outDir), name: NAME, timeoutMs: 30_000, ...extra }),
  };
};
/** Processes (find, tar, pigz...) whose working directory is `dir`. */
const processesIn = (dir: string): number[] =>
  fs
    .readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return fs.readlinkSync(`/proc/${p}/cwd`) === dir;
      } catch {
        return false;
      }
    })
    .map(Number);
/** Extracts with the system's GNU tar, as a user downloading the archive would. */
const systemExtract = async (archivePath: string): Promise<string> => {
  const dir = freshDir("sysx");
  await execa("tar", ["-xzf", archivePath, "-C", dir]);
  return dir;
};
const names = async (archivePath: string) => (await listArchive(archivePath)).map((e) => e.path.replace(/\/$/, "")).sort();
const rejection = async (p: Promise<unknown>): Promise<TaskFailure> => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TaskFailure);
  return err as TaskFailure;
};

/**
 * Small workspaces are packed in-process, larger ones by GNU find and tar: every hostile input is tried on both.
 * The large layout adds a directory of empty files, more entries than the in-process path takes.
 */
const PADDING = "zz-padding";
const LAYOUTS = [
  { layout: "small workspace (packed in-process)", padding: 0 },
  { layout: "large workspace (GNU find and tar)", padding: IN_PROCESS_LIMITS.entries },
] as const;
/** Entries the padding adds to an archive: the directory and its files. */
const paddingEntries = (padding: number) => (padding > 0 ? padding + 1 : 0);
const pad = (ws: string, padding: number): string => {
  if (padding === 0) return ws;
  fs.mkdirSync(path.join(ws, PADDING));
  for (let i = 0; i < padding; i++) fs.writeFileSync(path.join(ws, PADDING, `p${i}`), "");
  return ws;
};
const namesWithoutPadding = async (archivePath: string) => (await names(archivePath)).filter((p) => !p.startsWith(PADDING));

describe.each(LAYOUTS)("createArchive, $layout", ({ padding }) => {
  const paddedWorkspace = (files: Record<string, string | Buffer> = {}) => pad(workspace(files), padding);

  it("stores files and directories under exact relative names that round-trip through GNU tar", async () => {
    const ws = paddedWorkspace({ "out.txt": "hello\n", "src/a.py": "print(1)\n", ".hidden": "h" });
    fs.mkdirSync(path.join(ws, "src/empty"));
    const a = archive(ws);
    const res = await a.run();

    expect(await namesWithoutPadding(a.archivePath)).toEqual([".hidden", "out.txt", "src", "src/a.py", "src/empty"]);
    expect(res.entries).toBe(5 + paddingEntries(padding));
    expect(res.skipped).toEqual([]);
    expect(res.contentBytes).toBe(6 + 9 + 1);
    expect(res.bytes).toBe(fs.statSync(a.archivePath).size);
    const { stdout } = await execa("sha256sum", [a.archivePath]);
    expect(res.sha256).toBe(stdout.split(" ")[0]);
    // The archive directory is created private; no temp file is left next to the archive.
    expect(fs.statSync(a.outDir).mode & 0o777).toBe(0o700);
    expect(await readdir(a.outDir)).toEqual([`${NAME}.tar.gz`]);

    const x = await systemExtract(a.archivePath);
    expect(await readFile(path.join(x, "out.txt"), "utf8")).toBe("hello\n");
    expect(await readFile(path.join(x, "src/a.py"), "utf8")).toBe("print(1)\n");
    expect(fs.statSync(path.join(x, "src/empty")).isDirectory()).toBe(true);
  });

  it.each([
    ["up to", []],
    ["past", [IN_PROCESS_LIMITS.bytes + 1]],
  ])("keeps every file's bytes and mode, with files %s the in-process size limit", async (_, extra) => {
    const sizes = [0, 1, 511, 512, 513, 100_000, ...extra];
    const files = Object.fromEntries(sizes.map((n) => [`f${n}.bin`, randomBytes(n)]));
    const ws = paddedWorkspace(files);
    fs.chmodSync(path.join(ws, "f1.bin"), 0o750);
    const a = archive(ws);
    const res = await a.run();
    expect(res.contentBytes).toBe(sizes.reduce((x, y) => x + y, 0));
    const x = await systemExtract(a.archivePath);
    for (const [name, content] of Object.entries(files)) expect(fs.readFileSync(path.join(x, name)).equals(content)).toBe(true);
    expect(fs.statSync(path.join(x, "f1.bin")).mode & 0o777).toBe(0o750);
    const { stdout } = await execa("sha256sum", [a.archivePath]);
    expect(res.sha256).toBe(stdout.split(" ")[0]);
  });

  it("stores a symlink to /etc/passwd as a link, never the host file's content", async () => {
    const ws = paddedWorkspace({ "keep.txt": "k" });
    fs.symlinkSync("/etc/passwd", path.join(ws, "passwd-link"));
    fs.symlinkSync("/etc", path.join(ws, "etc-link"));
    const a = archive(ws);
    await a.run();
    const entries = await listArchive(a.archivePath);
    expect(entries.find((e) => e.path === "passwd-link")).toMatchObject({ type: "SymbolicLink", linkpath: "/etc/passwd", size: 0 });
    expect(entries.find((e) => e.path === "etc-link")).toMatchObject({ type: "SymbolicLink", linkpath: "/etc", size: 0 });
    expect(entries.some((e) => e.path.startsWith("etc-link/"))).toBe(false);
    const passwd = fs.readFileSync("/etc/passwd");
    expect(gunzipSync(fs.readFileSync(a.archivePath)).includes(passwd.subarray(0, 32))).toBe(false);
  });

  it("skips and reports a FIFO without hanging (5 runs)", async () => {
    const ws = paddedWorkspace({ "a.txt": "a" });
    await execa("mkfifo", [path.join(ws, "pipe")]);
    for (let i = 0; i < 5; i++) {
      const a = archive(ws, { timeoutMs: 10_000 });
      const res = await a.run();
      expect(res.skipped).toEqual([{ path: "pipe", why: expect.stringMatching(/FIFO/) }]);
      expect(await namesWithoutPadding(a.archivePath)).toEqual(["a.txt"]);
    }
  });

  it("skips and reports a unix socket", async () => {
    const ws = paddedWorkspace({ "a.txt": "a" });
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(path.join(ws, "sock"), resolve));
    try {
      const a = archive(ws);
      const res = await a.run();
      expect(res.skipped).toEqual([{ path: "sock", why: expect.stringMatching(/socket/) }]);
      expect(await namesWithoutPadding(a.archivePath)).toEqual(["a.txt"]);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("archives names that are not UTF-8, contain newlines or look like tar options", async () => {
    const ws = paddedWorkspace({ "line1\nline2.txt": "nl", "--to-command=touch PWNED": "opt", "-C": "dash" });
    const badName = Buffer.concat([Buffer.from(`${ws}/bad-`), Buffer.from([0xff, 0xfe, 0x2e, 0x74])]);
    fs.writeFileSync(badName, "raw");
    const a = archive(ws);
    const res = await a.run();
    expect(res.entries).toBe(4 + paddingEntries(padding));
    expect(res.skipped).toEqual([]);

    const x = await systemExtract(a.archivePath);
    const raw = fs.readdirSync(x, { encoding: "buffer" });
    expect(raw.some((b) => b.equals(Buffer.from([0x62, 0x61, 0x64, 0x2d, 0xff, 0xfe, 0x2e, 0x74])))).toBe(true);
    expect(await readFile(path.join(x, "line1\nline2.txt"), "utf8")).toBe("nl");
    expect(await readFile(path.join(x, "--to-command=touch PWNED"), "utf8")).toBe("opt");
    expect(await readFile(path.join(x, "-C"), "utf8")).toBe("dash");
    // The option-like name was data, not an option: nothing was executed.
    expect(fs.existsSync(path.join(ws, "PWNED"))).toBe(false);
  });

  it("stores a file whose name starts with @ as that file, never as an archive to copy in", async () => {
    const inner = path.join(freshDir("inner"), "inner.tar");
    fs.writeFileSync(path.join(path.dirname(inner), "smuggled.txt"), "x");
    await execa("tar", ["-cf", inner, "-C", path.dirname(inner), "smuggled.txt"]);
    const ws = paddedWorkspace({ "@inner.tar": fs.readFileSync(inner) });
    const a = archive(ws);
    const res = await a.run();
    expect(await namesWithoutPadding(a.archivePath)).toEqual(["@inner.tar"]);
    expect(res.entries).toBe(1 + paddingEntries(padding));
    const x = await systemExtract(a.archivePath);
    expect(fs.readFileSync(path.join(x, "@inner.tar")).equals(fs.readFileSync(inner))).toBe(true);
    expect(fs.existsSync(path.join(x, "smuggled.txt"))).toBe(false);
  });

  it("stores names that look like a drive, a share or hold U+FFFD verbatim", async () => {
    const ws = paddedWorkspace({ "c:drive.txt": "c", "\\\\host\\share": "s", "ok\uFFFD.txt": "r", "d:/x.txt": "d" });
    const a = archive(ws);
    const res = await a.run();
    expect(await namesWithoutPadding(a.archivePath)).toEqual(["\\\\host\\share", "c:drive.txt", "d:", "d:/x.txt", "ok\uFFFD.txt"]);
    expect(res.entries).toBe(5 + paddingEntries(padding));
    const x = await systemExtract(a.archivePath);
    expect(await readFile(path.join(x, "c:drive.txt"), "utf8")).toBe("c");
    expect(await readFile(path.join(x, "\\\\host\\share"), "utf8")).toBe("s");
    expect(await readFile(path.join(x, "d:", "x.txt"), "utf8")).toBe("d");
  });

  it("archives a tree deeper than the in-process path takes", async () => {
    const ws = paddedWorkspace();
    const deep = path.join(ws, ...Array.from({ length: IN_PROCESS_LIMITS.pathBytes / 2 + 10 }, () => "d"));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, "bottom.txt"), "bottom");
    const a = archive(ws);
    await a.run();
    const bottom = path.relative(ws, path.join(deep, "bottom.txt"));
    expect((await listArchive(a.archivePath)).find((e) => e.path === bottom)).toMatchObject({ type: "File", size: 6 });
  });

  it("archives a mode-000 file and directory", async () => {
    const ws = paddedWorkspace({ "locked/secret": "s3cret" });
    fs.chmodSync(path.join(ws, "locked/secret"), 0o000);
    fs.chmodSync(path.join(ws, "locked"), 0o000);
    const a = archive(ws);
    const res = await a.run();
    expect(res.skipped).toEqual([]);
    expect(await namesWithoutPadding(a.archivePath)).toEqual(["locked", "locked/secret"]);
    fs.chmodSync(path.join(ws, "locked"), 0o755);
  });

  it("leaves out and reports files over maxFileBytes", async () => {
    const ws = paddedWorkspace({ "small.txt": "s" });
    fs.writeFileSync(path.join(ws, "big.bin"), "");
    fs.truncateSync(path.join(ws, "big.bin"), 64 * 1024 * 1024); // sparse
    const a = archive(ws, { maxFileBytes: 1024 * 1024 });
    const res = await a.run();
    expect(res.skipped).toEqual([{ path: "big.bin", why: expect.stringMatching(/larger than 1048576 bytes/) }]);
    expect(await namesWithoutPadding(a.archivePath)).toEqual(["small.txt"]);
  });
});

describe("createArchive", () => {
  it("produces a valid empty tar.gz for an empty workspace", async () => {
    const a = archive(workspace());
    const res = await a.run();
    expect(res.entries).toBe(0);
    expect((await execa("tar", ["-tzf", a.archivePath])).stdout).toBe("");
  });

  it("stores hardlinks across subdirectories as links, without deadlocking", async () => {
    const ws = workspace({ "a/orig.bin": randomBytes(1024 * 1024) });
    for (let i = 0; i < 50; i++) {
      fs.mkdirSync(path.join(ws, `d${i}/sub`), { recursive: true });
      fs.linkSync(path.join(ws, "a/orig.bin"), path.join(ws, `d${i}/sub/link.bin`));
    }
    const a = archive(ws, { timeoutMs: 20_000 });
    const res = await a.run();
    const entries = await listArchive(a.archivePath);
    expect(entries.filter((e) => e.type === "Link")).toHaveLength(50);
    expect(res.bytes).toBeLessThan(2 * 1024 * 1024); // one copy of the content, not 51
    const x = await systemExtract(a.archivePath);
    expect(fs.statSync(path.join(x, "a/orig.bin")).nlink).toBe(51);
  });

  it("times out: throws archive_failed, kills its children and leaves no file behind", async () => {
    // A 1 TiB sparse file (no disk used) that the archive must read whole: no machine finishes it within the
    // timeout, so the timeout is what ends it.
    const ws = workspace();
    fs.closeSync(fs.openSync(path.join(ws, "sparse.bin"), "w"));
    fs.truncateSync(path.join(ws, "sparse.bin"), 1024 ** 4);
    const a = archive(ws, { timeoutMs: 200, maxFileBytes: 2 * 1024 ** 4 });
    try {
      const err = await within(rejection(a.run()), 60_000, "the archive to stop at its timeout");
      expect(err.reason).toBe("archive_failed");
      expect(err.message).toMatch(/longer than 200 ms/);
      expect(await readdir(a.outDir)).toEqual([]);
      // No find/tar/pigz is still running in the workspace.
      expect(processesIn(ws)).toEqual([]);
    } finally {
      // Had the timeout not stopped them, they would read that terabyte for a long time on a shared machine.
      for (const pid of processesIn(ws)) process.kill(pid, "SIGKILL");
    }
  });

  it("reports cancellation through the signal as canceled", async () => {
    const ws = workspace({ "a.txt": "a" });
    const ac = new AbortController();
    ac.abort();
    const a = archive(ws, { signal: ac.signal });
    expect((await rejection(a.run())).reason).toBe("canceled");
    expect(fs.existsSync(a.archivePath)).toBe(false);
  });

  it("fails cleanly when the archive directory cannot be created", async () => {
    const ws = workspace({ "a.txt": "a" });
    const parent = freshDir("blocked");
    fs.writeFileSync(path.join(parent, "archives"), "I am a file");
    const err = await rejection(
      createArchive({ workspacePath: ws, store: new LocalArchiveStore(path.join(parent, "archives/sub")), name: NAME, timeoutMs: 10_000 }),
    );
    expect(err.reason).toBe("archive_failed");
    expect(await readdir(parent)).toEqual(["archives"]);
    expect(fs.readFileSync(path.join(parent, "archives"), "utf8")).toBe("I am a file");
  });

  it("fails cleanly with ENOSPC, leaving neither a temp file nor a partial archive", async () => {
    const mnt = freshDir("full");
    const mounted = await execa("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], { reject: false });
    if (mounted.exitCode !== 0) return; // no CAP_SYS_ADMIN here: nothing to prove
    try {
      const ws = workspace({ "random.bin": randomBytes(4 * 1024 * 1024) });
      const err = await rejection(createArchive({ workspacePath: ws, store: new LocalArchiveStore(mnt), name: NAME, timeoutMs: 10_000 }));
      expect(err.reason).toBe("archive_failed");
      expect(err.message).toMatch(/full/);
      expect(await readdir(mnt)).toEqual([]);
    } finally {
      await execa("umount", [mnt]);
    }
  });

  it("treats tar's per-file read warnings (as a non-root user would get them) as skipped, anything else as fatal", async () => {
    const dir = freshDir("nobody");
    fs.chmodSync(root, 0o755);
    fs.writeFileSync(path.join(dir, "ok"), "ok");
    fs.writeFileSync(path.join(dir, "secret"), "s");
    fs.chmodSync(path.join(dir, "secret"), 0o000);
    const r = await execa(
      "setpriv",
      // --file=- (not /dev/null, for which GNU tar skips reading files altogether)
      ["--reuid=65534", "--regid=65534", "--clear-groups", "tar", "--create", "--file=-", "ok", "secret"],
      { cwd: dir, reject: false, env: { LC_ALL: "C" } },
    );
    fs.chmodSync(root, 0o700);
    expect(r.exitCode).toBe(2);
    expect(classifyStderr(r.stderr)).toEqual({
      skipped: [{ path: "secret", why: "unreadable: Cannot open: Permission denied" }],
      unknown: [],
    });
    expect(classifyStderr("tar: -: Cannot write: No space left on device").unknown).toHaveLength(1);
  });
});

// --- extraction of untrusted archives -------------------------------------------------------

type RawEntry = {
  path: string;
  type: "File" | "Directory" | "SymbolicLink" | "Link" | "FIFO";
  linkpath?: string;
  body?: string;
  mode?: number;
  uid?: number;
};

/** Hand-made tar.gz: every name and link target exactly as a hostile task would write it. */
const hostileTgz = (entries: RawEntry[]): string => {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const body = Buffer.from(e.body ?? "");
    const block = Buffer.alloc(512);
    new Header({
      path: e.path,
      type: e.type,
      linkpath: e.linkpath ?? "",
      size: body.length,
      mode: e.mode ?? (e.type === "Directory" ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.uid ?? 0,
      mtime: new Date(),
    }).encode(block, 0);
    blocks.push(block);
    if (body.length > 0) blocks.push(Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]));
  }
  blocks.push(Buffer.alloc(1024));
  const file = path.join(freshDir("hostile"), "h.tar.gz");
  fs.writeFileSync(file, gzipSync(Buffer.concat(blocks)));
  return file;
};
const extract = (archivePath: string, destPath = freshDir("dest"), limits = { maxTotalBytes: 1 << 20, maxEntries: 1000 }) =>
  extractArchive({ archivePath, destPath, timeoutMs: 10_000, ...limits }).then((res) => ({ ...res, destPath }));
/** Every path under dir (relative), without following links. */
const tree = (dir: string, prefix = ""): string[] =>
  fs
    .readdirSync(path.join(dir, prefix), { withFileTypes: true })
    .flatMap((d) => {
      const rel = path.join(prefix, d.name);
      return d.isDirectory() ? [rel, ...tree(dir, rel)] : [rel];
    })
    .sort();

describe("extractArchive", () => {
  it("never writes through a symlink planted in the archive, in any order or chain", async () => {
    const canary = freshDir("canary");
    const dest = freshDir("dest");
    const file = hostileTgz([
      { path: "evil", type: "SymbolicLink", linkpath: canary },
      { path: "evil/pwned", type: "File", body: "owned" },
      { path: "up", type: "SymbolicLink", linkpath: `../../${path.basename(canary)}` },
      { path: "up/pwned2", type: "File", body: "owned" },
      { path: "late/pwned3", type: "File", body: "owned" },
      { path: "late", type: "SymbolicLink", linkpath: canary },
      { path: "l", type: "SymbolicLink", linkpath: "." },
      { path: "m", type: "SymbolicLink", linkpath: "l/.." },
      { path: "m/pwned4", type: "File", body: "owned" },
      { path: "ok.txt", type: "File", body: "fine" },
      { path: "rel", type: "SymbolicLink", linkpath: "ok.txt" },
    ]);
    const res = await extract(file, dest);
    expect(fs.readdirSync(canary)).toEqual([]);
    expect(fs.readdirSync(path.dirname(dest)).filter((f) => f.startsWith("pwned"))).toEqual([]);
    expect(tree(dest)).toEqual(["l", "ok.txt", "rel"]);
    expect(fs.readlinkSync(path.join(dest, "rel"))).toBe("ok.txt");
    expect(res.skipped.map((s) => s.path).sort()).toEqual([
      "evil",
      "evil/pwned",
      "late",
      "late/pwned3",
      "m",
      "m/pwned4",
      "up",
      "up/pwned2",
    ]);
    expect(res.entries).toBe(3);
  });

  it("drops ../ and absolute names (hand-made and GNU tar -P archives)", async () => {
    const outside = freshDir("outside");
    const dest = path.join(freshDir("deep"), "a", "dest");
    fs.mkdirSync(dest, { recursive: true });
    const file = hostileTgz([
      { path: "../escape", type: "File", body: "x" },
      { path: "a/../../escape2", type: "File", body: "x" },
      { path: `${outside}/abs`, type: "File", body: "x" },
      { path: "c:evil", type: "File", body: "x" },
      { path: "fine", type: "File", body: "ok" },
    ]);
    const res = await extract(file, dest);
    expect(tree(dest)).toEqual(["fine"]);
    expect(tree(path.dirname(dest))).toEqual(["dest", "dest/fine"]);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(res.skipped).toHaveLength(4);

    const stage = freshDir("stage");
    fs.writeFileSync(path.join(stage, "x"), "x");
    const gnu = path.join(freshDir("gnu"), "p.tar.gz");
    await execa("tar", ["-czPf", gnu, "-C", stage, "--transform", `s,^x$,../gnu-escape,`, "x"]);
    expect((await listArchive(gnu)).map((e) => e.path)).toEqual(["../gnu-escape"]);
    const dest2 = freshDir("dest");
    expect((await extract(gnu, dest2)).skipped).toHaveLength(1);
    expect(fs.existsSync(path.join(path.dirname(dest2), "gnu-escape"))).toBe(false);
  });

  it("drops hardlink entries that lead outside (to /etc/passwd or up) and special files", async () => {
    const before = fs.statSync("/etc/passwd");
    const file = hostileTgz([
      { path: "pw", type: "Link", linkpath: "/etc/passwd" },
      { path: "pw2", type: "Link", linkpath: "../../../../etc/passwd" },
      { path: "pw", type: "File", body: "root::0:0::/root:/bin/sh\n" },
      { path: "fifo", type: "FIFO" },
    ]);
    const res = await extract(file);
    expect(fs.statSync("/etc/passwd")).toMatchObject({ nlink: before.nlink, size: before.size, mtimeMs: before.mtimeMs });
    expect(tree(res.destPath)).toEqual(["pw"]);
    expect(fs.statSync(path.join(res.destPath, "pw")).nlink).toBe(1);
    const outside = "hard link to a path outside the workspace or through a link";
    expect(res.skipped.map((s) => s.why)).toEqual([outside, outside, "FIFO entry not restored"]);
  });

  it("masks modes and does not keep the archive's owner", async () => {
    const file = hostileTgz([
      { path: "suid", type: "File", body: "#!/bin/sh", mode: 0o4777, uid: 12345 },
      { path: "dir", type: "Directory", mode: 0o3777, uid: 12345 },
    ]);
    const { destPath } = await extract(file);
    for (const p of ["suid", "dir"]) {
      const st = fs.statSync(path.join(destPath, p));
      expect(st.mode & 0o7777).toBe(0o755);
      expect(st.uid).toBe(process.getuid?.());
    }
  });

  it.each([
    [
      "maxEntries",
      { maxTotalBytes: 1 << 20, maxEntries: 10 },
      Array.from({ length: 20 }, (_, i) => ({ path: `f${i}`, type: "File" as const, body: "x" })),
    ],
    [
      "maxTotalBytes",
      { maxTotalBytes: 4096, maxEntries: 100 },
      [
        { path: "ok", type: "File" as const, body: "x" },
        { path: "big", type: "File" as const, body: "y".repeat(5000) },
      ],
    ],
  ])("refuses an archive over %s and writes nothing", async (limit, limits, entries) => {
    const dest = freshDir("dest");
    const err = await rejection(extract(hostileTgz(entries), dest, limits));
    expect(err.reason).toBe("workspace_failed");
    expect(err.message).toContain(limit);
    expect(fs.readdirSync(dest)).toEqual([]);
  });

  it("restores an empty archive, from createArchive or GNU tar, as an empty workspace, and refuses zeros that are not whole blocks", async () => {
    const made = archive(workspace());
    await made.run();
    const gnu = path.join(freshDir("gnu-empty"), "e.tar.gz");
    await execa("tar", ["-czf", gnu, "--files-from=/dev/null"]);
    for (const file of [made.archivePath, gnu]) {
      const res = await extract(file);
      expect(res.entries).toBe(0);
      expect(fs.readdirSync(res.destPath)).toEqual([]);
    }
    const odd = path.join(freshDir("odd"), "odd.tar.gz");
    fs.writeFileSync(odd, gzipSync(Buffer.alloc(700)));
    expect((await rejection(extract(odd))).reason).toBe("workspace_failed");
  });

  it("rejects a truncated archive and a destination that is a symlink", async () => {
    const ws = workspace({ "r.bin": randomBytes(200_000) });
    const a = archive(ws);
    await a.run();
    const cut = path.join(freshDir("cut"), "cut.tar.gz");
    fs.writeFileSync(cut, fs.readFileSync(a.archivePath).subarray(0, 50_000));
    expect((await rejection(extract(cut))).reason).toBe("workspace_failed");

    const link = path.join(freshDir("l"), "dest-link");
    fs.symlinkSync(freshDir("target"), link);
    expect((await rejection(extract(a.archivePath, link))).reason).toBe("workspace_failed");
  });

  it("round-trips a normal workspace through createArchive -> extractArchive", async () => {
    const ws = workspace({ "out.txt": "hello\n", "src/a.py": "print(1)\n", "src/pkg/mod.py": "x = 1\n" });
    fs.symlinkSync("src/a.py", path.join(ws, "main.py"));
    fs.symlinkSync("../out.txt", path.join(ws, "src/out-link"));
    fs.symlinkSync("/etc/passwd", path.join(ws, "host-link"));
    fs.linkSync(path.join(ws, "out.txt"), path.join(ws, "src/out-hard.txt"));
    fs.chmodSync(path.join(ws, "src/a.py"), 0o755);
    const a = archive(ws);
    const created = await a.run();
    const res = await extract(a.archivePath);
    const d = res.destPath;
    expect(await readFile(path.join(d, "src/pkg/mod.py"), "utf8")).toBe("x = 1\n");
    expect(fs.statSync(path.join(d, "src/a.py")).mode & 0o777).toBe(0o755);
    expect(fs.readlinkSync(path.join(d, "main.py"))).toBe("src/a.py");
    expect(fs.readlinkSync(path.join(d, "src/out-link"))).toBe("../out.txt");
    // The absolute symlink is refused and reported; both names of the hardlinked pair are restored
    // (the second as a copy), so the new workspace holds every file the earlier one had.
    expect(fs.existsSync(path.join(d, "host-link"))).toBe(false);
    for (const p of ["out.txt", "src/out-hard.txt"]) expect(await readFile(path.join(d, p), "utf8")).toBe("hello\n");
    expect(res.skipped).toEqual([{ path: "host-link", why: expect.stringMatching(/absolute/) }]);
    expect(res.entries).toBe(created.entries - 1);
    const digest = (p: string) => createHash("sha256").update(fs.readFileSync(p)).digest("hex");
    expect(digest(path.join(d, "src/a.py"))).toBe(digest(path.join(ws, "src/a.py")));
  });
});
