// A finished task's files read out of its archive (src/archive/archive-files.ts), from hand-made archives: what a
// hostile task (or a broken store) could put there is never served through a link, and limits hold.
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { gzipSync } from "node:zlib";
import { listArchiveFiles, openArchiveFile } from "../../src/archive/archive-files.js";
import { BerthError } from "../../src/errors.js";
import { type RawEntry, tarGz } from "../helpers/tar-bytes.js";

const signal = () => new AbortController().signal;
const from = (bytes: Buffer | null) => async () => (bytes ? Readable.from([bytes]) : null);
const list = (entries: RawEntry[], opts = {}) => listArchiveFiles(from(tarGz(entries)), signal(), opts);
const open = (entries: RawEntry[], rel: string) => openArchiveFile(from(tarGz(entries)), rel.split("/"), signal());
const code = (p: Promise<unknown>) =>
  p.then(
    () => "ok",
    (err: unknown) => (err instanceof BerthError ? err.code : String(err)),
  );

const TREE: RawEntry[] = [
  { path: "a.txt", type: "File", body: "hello" },
  { path: "d/", type: "Directory" },
  { path: "d/e/", type: "Directory" },
  { path: "d/e/f.txt", type: "File", body: "deep" },
  { path: "d/hard", type: "Link", linkpath: "a.txt" },
  { path: "up", type: "SymbolicLink", linkpath: ".." },
  { path: "up/x", type: "File", body: "through a link" },
  { path: "orphan/y", type: "File", body: "parent never listed" },
  { path: "late/z", type: "File", body: "parent listed after" },
  { path: "late/", type: "Directory" },
  { path: "bad\uFFFDname", type: "File", body: "not UTF-8" },
  { path: "p", type: "FIFO" },
];

describe("listArchiveFiles", () => {
  it("lists files, directories and links; nothing under a link or a parent not listed first; no FIFOs or bad names", async () => {
    expect(await list(TREE)).toEqual({
      files: [
        { path: "a.txt", type: "file", size: 5 },
        { path: "d", type: "dir", size: 0 },
        { path: "d/e", type: "dir", size: 0 },
        { path: "d/e/f.txt", type: "file", size: 4 },
        { path: "d/hard", type: "file", size: 5 },
        { path: "late", type: "dir", size: 0 },
        { path: "up", type: "symlink", size: 2 },
      ],
      truncated: false,
    });
  });

  it("keeps the shallowest entries within maxEntries and maxDepth, and says it left some out", async () => {
    const many: RawEntry[] = [{ path: "z/", type: "Directory" }];
    for (let i = 0; i < 30; i++) many.push({ path: `z/f${i}`, type: "File", body: "" });
    many.push({ path: "top.txt", type: "File", body: "" });
    const res = await list(many, { maxEntries: 10 });
    expect(res.truncated).toBe(true);
    expect(res.files).toHaveLength(10);
    expect(res.files.map((f) => f.path)).toEqual(expect.arrayContaining(["top.txt", "z"]));
    const deep = await list(TREE, { maxDepth: 2 });
    expect(deep.truncated).toBe(true);
    expect(deep.files.map((f) => f.path)).not.toContain("d/e/f.txt");
  });

  it("lists an empty archive (only end-of-archive blocks, as for an empty workspace) as empty, and refuses odd zeros", async () => {
    expect(await listArchiveFiles(from(gzipSync(Buffer.alloc(10_240))), signal())).toEqual({ files: [], truncated: false });
    expect(await code(openArchiveFile(from(gzipSync(Buffer.alloc(10_240))), ["a.txt"], signal()))).toBe("not_found");
    await expect(listArchiveFiles(from(gzipSync(Buffer.alloc(700))), signal())).rejects.toThrow(/TAR_BAD_ARCHIVE|Unrecognized/);
  });

  it("answers not_found when the store has no archive", async () => {
    expect(await code(listArchiveFiles(from(null), signal()))).toBe("not_found");
  });
});

describe("openArchiveFile", () => {
  it("streams a file's bytes, and a hardlink's from its target", async () => {
    const f = await open(TREE, "d/e/f.txt");
    expect(f.size).toBe(4);
    expect((await buffer(f.stream)).toString()).toBe("deep");
    const h = await open(TREE, "d/hard");
    expect([h.size, (await buffer(h.stream)).toString()]).toEqual([5, "hello"]);
  });

  it("refuses a link, anything under one or under an unlisted parent, a FIFO, a bad name and a missing file", async () => {
    for (const rel of ["up", "up/x", "orphan/y", "late/z", "p", "bad\uFFFDname", "nope", "d/e/nope"]) {
      expect([rel, await code(open(TREE, rel))]).toEqual([rel, "not_found"]);
    }
    expect(await code(open(TREE, "d"))).toBe("invalid_input");
    expect(await code(open([{ path: "h", type: "Link", linkpath: "missing" }], "h"))).toBe("not_found");
  });

  it("ends a file cut short by a broken archive with an error, not with fewer bytes", async () => {
    const gz = tarGz([{ path: "r.bin", type: "File", body: Buffer.alloc(2_000_000, 7) }]);
    const cut = gz.subarray(0, Math.floor(gz.length / 2));
    const got = await openArchiveFile(from(cut), ["r.bin"], signal());
    expect(got.size).toBe(2_000_000);
    await expect(buffer(got.stream)).rejects.toThrow();
  });
});
