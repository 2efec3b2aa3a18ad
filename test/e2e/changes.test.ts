// What a task changed (shared/API.md §5 "What changed"), on the real engine: the change list and its summary, the
// unified diff, the change-only archive, a fromTask chain, hostile workspaces, and the CLI's `changes` and `diff`.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { listArchive } from "../../src/archive/read-archive.js";
import { BerthClient } from "../../src/client/index.js";
import type { ChangeEntry, ChangeList, TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { startS3, type S3Store } from "../helpers/s3.js";

const ROOT = process.cwd();
const CLI = path.join(ROOT, "dist/cli/main.js");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let h: Harness;

beforeAll(async () => {
  if (await isStale(CLI, path.join(ROOT, "src"))) await execa("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: ROOT, reject: false });
  if (!existsSync(CLI)) throw new Error(`${CLI} was not built; run npm run build`);
  // A disk limit large enough for the 20 GB sparse file (disk limits have their own tests in limits.test.ts).
  h = await startHarness({ BERTH_TASK_TIMEOUT_SECONDS: "300", BERTH_DEFAULT_DISK_MB: "32768", BERTH_MAX_DISK_MB: "32768" });
}, 180_000);

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
}, 120_000);

async function run(body: Record<string, unknown>, timeoutMs = 120_000): Promise<TaskView> {
  const t = await h.submit({ timeoutSeconds: 300, ...body });
  const done = await h.waitFinished(t.id, timeoutMs);
  expect(done).toMatchObject({ status: "succeeded", exitCode: 0 });
  return done;
}

async function changeList(id: string, query = ""): Promise<ChangeList> {
  const res = await h.request("GET", `/v1/tasks/${id}/changes${query}`);
  expect(res.statusCode).toBe(200);
  return res.json() as ChangeList;
}

const byPath = (changes: ChangeEntry[]) => new Map(changes.map((c) => [c.path, c]));

async function changeArchive(id: string): Promise<{ file: string; members: string[]; deleted: string; sha: string }> {
  const res = await h.request("GET", `/v1/tasks/${id}/archive?changes=only`);
  expect(res.statusCode).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/gzip");
  const sha = sha256(res.raw);
  expect(res.headers.get("x-berth-sha256")).toBe(sha);
  expect(res.headers.get("etag")).toBe(`"${sha}"`);
  const file = path.join(h.root, `${id}.changes.tar.gz`);
  await writeFile(file, res.raw);
  const members = (await listArchive(file)).map((e) => e.path.replace(/\/$/, ""));
  const deleted = (await execa("tar", ["-xzOf", file, ".berth-deleted"])).stdout;
  return { file, members, deleted, sha };
}

describe("a task started from files", () => {
  let t: TaskView;
  const files = {
    "keep.txt": "unchanged\n",
    "mod.txt": "line1\nline2\nline3\n",
    "del.txt": "bye\n",
    "dir/x.txt": "x\n",
    "swap/inner.txt": "inner\n",
    "pw.txt": "not a link yet\n",
    "run.sh": "#!/bin/sh\necho run\n",
  };
  const script = [
    "set -e",
    "printf 'line1\\nLINE2\\nline3\\n' > mod.txt",
    "rm del.txt",
    "echo new > added.txt",
    "mkdir newdir",
    "head -c 3000 /dev/urandom > newdir/bin.dat",
    "printf '\\000\\001' >> newdir/bin.dat",
    // A directory swapped for a file, a file swapped for a link out of the workspace.
    "rm -r swap",
    "echo now-a-file > swap",
    "rm pw.txt",
    "ln -s /etc/passwd pw.txt",
    "chmod 755 run.sh",
    // A name holding a newline.
    `printf nl > "$(printf 'a\\nb.txt')"`,
    // Only its mtime changes: not a change.
    "touch -d 2001-01-01 keep.txt",
  ].join("\n");

  beforeAll(async () => {
    t = await run({ command: ["sh", "-c", script], files });
  }, 180_000);

  it("lists what was added, modified, deleted and type-changed, and the task view carries the summary", async () => {
    const list = await changeList(t.id);
    expect(list.nextCursor).toBeNull();
    const c = byPath(list.changes);
    expect(c.get("mod.txt")).toEqual({ path: "mod.txt", change: "modified", type: "file", size: 18, previousSize: 18 });
    expect(c.get("run.sh")).toMatchObject({ change: "modified", type: "file" });
    expect(c.get("del.txt")).toEqual({ path: "del.txt", change: "deleted", type: "file", size: null, previousSize: 4 });
    expect(c.get("swap/inner.txt")).toMatchObject({ change: "deleted", type: "file" });
    expect(c.get("added.txt")).toEqual({ path: "added.txt", change: "added", type: "file", size: 4, previousSize: null });
    expect(c.get("newdir")).toMatchObject({ change: "added", type: "dir" });
    expect(c.get("newdir/bin.dat")).toMatchObject({ change: "added", type: "file", size: 3002 });
    expect(c.get("swap")).toMatchObject({ change: "type_changed", type: "file", previousType: "dir", size: 11 });
    // A link by its target's text (11 bytes), never followed.
    expect(c.get("pw.txt")).toMatchObject({ change: "type_changed", type: "symlink", previousType: "file", size: 11 });
    expect(c.get("a\nb.txt")).toMatchObject({ change: "added", type: "file", size: 2 });
    // Unchanged content is not listed, whatever happened to its mtime.
    expect(c.has("keep.txt")).toBe(false);
    expect(c.has("dir")).toBe(false);
    expect(c.has("dir/x.txt")).toBe(false);
    // In path order: byte order of the UTF-8 names.
    const paths = list.changes.map((x) => x.path);
    expect(paths).toEqual([...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(list.summary).toEqual({
      added: 4,
      modified: 2,
      deleted: 2,
      typeChanged: 2,
      // a\nb.txt 2, added.txt 4, newdir/bin.dat 3002, swap (a directory, now an 11-byte file) 11
      bytesAdded: 2 + 4 + 3002 + 11,
      // del.txt 4, swap/inner.txt 6, pw.txt (15 bytes of text, now an 11-byte link) 4
      bytesRemoved: 4 + 6 + 4,
    });
    expect((await h.get(t.id)).changes).toEqual(list.summary);
  });

  it("pages the list with a cursor", async () => {
    const first = await changeList(t.id, "?limit=4");
    expect(first.changes).toHaveLength(4);
    expect(first.nextCursor).not.toBeNull();
    const rest = await changeList(t.id, `?cursor=${first.nextCursor}`);
    expect([...first.changes, ...rest.changes]).toEqual((await changeList(t.id)).changes);
    expect((await h.request("GET", `/v1/tasks/${t.id}/changes?limit=0`)).statusCode).toBe(400);
    expect((await h.request("GET", `/v1/tasks/${t.id}/changes?cursor=x`)).statusCode).toBe(400);
  });

  it("diffs the changed text files, names the binary ones, and never shows a byte from outside the workspace", async () => {
    const res = await h.request("GET", `/v1/tasks/${t.id}/diff`);
    expect(res.statusCode).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/x-diff/);
    expect(res.headers.get("x-berth-diff-truncated")).toBe("false");
    const diff = res.body;
    expect(diff).toContain(
      "diff --git a/mod.txt b/mod.txt\n--- a/mod.txt\n+++ b/mod.txt\n@@ -1,3 +1,3 @@\n line1\n-line2\n+LINE2\n line3\n",
    );
    expect(diff).toContain(
      "diff --git a/del.txt b/del.txt\ndeleted file mode 100644\n--- a/del.txt\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-bye\n",
    );
    expect(diff).toContain("diff --git a/added.txt b/added.txt\nnew file mode 100644\n");
    expect(diff).toContain("+new\n");
    expect(diff).toContain("Binary files /dev/null and b/newdir/bin.dat differ");
    expect(diff).toContain("diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n");
    // The file that became a link: its old text removed, the link's target text added, nothing read through it.
    expect(diff).toContain("-not a link yet\n");
    expect(diff).toContain("new file mode 120000\n");
    expect(diff).toContain("+/etc/passwd\n\\ No newline at end of file\n");
    expect(diff).not.toMatch(/root:.*:0:0:/);
    // The name with a newline stays on one (quoted) line.
    expect(diff).toContain('diff --git "a/a\\nb.txt" "b/a\\nb.txt"');

    const one = await h.request("GET", `/v1/tasks/${t.id}/diff?path=mod.txt`);
    expect(one.statusCode).toBe(200);
    expect(one.body.match(/^diff --git/gm)).toHaveLength(1);
    expect(one.body).toContain("+LINE2");
    expect((await h.request("GET", `/v1/tasks/${t.id}/diff?path=keep.txt`)).body).toBe("");
    const bad = await h.request("GET", `/v1/tasks/${t.id}/diff?path=../../etc/passwd`);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("invalid_input");
  });

  it("gives a change-only archive of the added and modified entries with a deletion list, under its own sha256", async () => {
    const a = await changeArchive(t.id);
    expect(new Set(a.members)).toEqual(
      new Set([".berth-deleted", "a\nb.txt", "added.txt", "mod.txt", "newdir", "newdir/bin.dat", "pw.txt", "run.sh", "swap"]),
    );
    // Paths to remove before unpacking: the deleted ones, and those whose type changed.
    expect(a.deleted).toBe(["del.txt", "pw.txt", "swap", "swap/inner.txt"].join("\n"));
    const out = path.join(h.root, "unpacked");
    await execa("mkdir", ["-p", out]);
    await execa("tar", ["-xzf", a.file, "-C", out, "--no-same-owner"]);
    expect(await readFile(path.join(out, "mod.txt"), "utf8")).toBe("line1\nLINE2\nline3\n");
    expect(await readFile(path.join(out, "swap"), "utf8")).toBe("now-a-file\n");
    expect((await stat(path.join(out, "newdir/bin.dat"))).size).toBe(3002);
    // Asked again: the same bytes, made once.
    expect((await changeArchive(t.id)).sha).toBe(a.sha);
    expect((await h.get(t.id)).archive?.sha256).not.toBe(a.sha);
  });

  it("shows the changes and the diff on the command line: coloured on request, plain when piped", async () => {
    const changes = await berth(["changes", t.id]);
    expect(changes.exitCode).toBe(0);
    expect(changes.stdout).toContain("M  mod.txt  (file, 18 → 18 bytes)\n");
    expect(changes.stdout).toContain("D  del.txt  (file, was 4 bytes)\n");
    expect(changes.stdout).toContain("T  swap  (dir → file)\n");
    expect(changes.stdout).toContain('A  "a\\nb.txt"  (file, 2 bytes)\n');
    expect(changes.stdout).toMatch(/^4 added, 2 modified, 2 deleted, 2 type changed; \+3019 -14 bytes\n$/m);
    const json = JSON.parse(String((await berth(["changes", t.id, "--json"])).stdout)) as { changes: ChangeEntry[] };
    expect(json.changes).toEqual((await changeList(t.id)).changes);

    const plain = await berth(["diff", t.id, "mod.txt"]);
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toContain("-line2\n+LINE2\n");
    expect(plain.stdout).not.toContain("\x1b[");
    const coloured = await berth(["diff", t.id, "mod.txt", "--color", "always"]);
    expect(coloured.stdout).toContain("\x1b[31m-line2\x1b[0m\n\x1b[32m+LINE2\x1b[0m");

    const dl = await berth(["download", t.id, "--changes-only", "-o", "delta.tar.gz"]);
    expect(dl.exitCode).toBe(0);
    expect(sha256(await readFile(path.join(h.root, "delta.tar.gz")))).toBe((await changeArchive(t.id)).sha);

    const client = new BerthClient({ url: h.url });
    expect((await client.diff(t.id, { path: "mod.txt" })).text).toBe(plain.stdout);
    const all: ChangeEntry[] = [];
    for await (const c of client.allChanges(t.id)) all.push(c);
    expect(all).toEqual((await changeList(t.id)).changes);
  });
});

describe("a fromTask chain", () => {
  it("compares each task with the final workspace of the one it started from", async () => {
    const t1 = await run({
      command: ["sh", "-c", "echo two >> a.txt; echo b > b.txt; mkdir -p keep && echo k > keep/k"],
      files: { "a.txt": "one\n" },
    });
    const t2 = await run({ command: ["sh", "-c", "rm b.txt; echo c > c.txt; echo three >> a.txt"], fromTask: t1.id });
    const t3 = await run({ command: ["true"], fromTask: t2.id });

    expect((await changeList(t1.id)).changes.map((c) => [c.path, c.change])).toEqual([
      ["a.txt", "modified"],
      ["b.txt", "added"],
      ["keep", "added"],
      ["keep/k", "added"],
    ]);
    const two = await changeList(t2.id);
    expect(two.changes.map((c) => [c.path, c.change])).toEqual([
      ["a.txt", "modified"],
      ["b.txt", "deleted"],
      ["c.txt", "added"],
    ]);
    expect(two.summary).toMatchObject({ added: 1, modified: 1, deleted: 1, typeChanged: 0 });
    // "Before" is t1's final a.txt, read out of t1's archive.
    const diff = (await h.request("GET", `/v1/tasks/${t2.id}/diff?path=a.txt`)).body;
    expect(diff).toContain("@@ -1,2 +1,3 @@\n one\n two\n+three\n");
    const three = await changeList(t3.id);
    expect(three.changes).toEqual([]);
    expect(three.summary).toEqual({ added: 0, modified: 0, deleted: 0, typeChanged: 0, bytesAdded: 0, bytesRemoved: 0 });
    expect((await h.request("GET", `/v1/tasks/${t3.id}/diff`)).body).toBe("");

    // t2's incremental backup: its changes over t1's archive rebuild t2's workspace.
    const a = await changeArchive(t2.id);
    expect(new Set(a.members)).toEqual(new Set([".berth-deleted", "a.txt", "c.txt"]));
    expect(a.deleted).toBe("b.txt");
  }, 360_000);
});

describe("hostile workspaces", () => {
  it("keeps a list of 100,000 new files and a 20 GB sparse file correct and bounded", async () => {
    const script = [
      "set -e",
      "mkdir many && cd many && seq 1 100000 | xargs touch && cd ..",
      "truncate -s 20G sparse.bin",
      "echo changed > f.txt",
    ].join("\n");
    const t = await run({ command: ["sh", "-c", script], files: { "f.txt": "start\n" } }, 300_000);
    const first = await changeList(t.id, "?limit=10000");
    expect(first.summary).toMatchObject({ added: 100_002, modified: 1, deleted: 0, typeChanged: 0 });
    expect(first.changes).toHaveLength(10_000);
    const all = [...first.changes];
    for (let cursor = first.nextCursor; cursor; ) {
      const page = await changeList(t.id, `?limit=10000&cursor=${cursor}`);
      all.push(...page.changes);
      cursor = page.nextCursor;
    }
    expect(all).toHaveLength(100_003);
    // Listed at its size though the archive left it out (over the per-file bound), and never read for a diff.
    expect(all.at(-1)).toEqual({ path: "sparse.bin", change: "added", type: "file", size: 20 * 1024 ** 3, previousSize: null });
    const one = await h.request("GET", `/v1/tasks/${t.id}/diff?path=sparse.bin`);
    expect(one.body).toBe(
      `diff --git a/sparse.bin b/sparse.bin\nnew file mode 100644\n# berth: not diffed: is ${20 * 1024 ** 3} bytes, over the 1048576-byte bound\n`,
    );
    // The whole diff is cut at its bound, and says so.
    const diff = await h.request("GET", `/v1/tasks/${t.id}/diff`);
    expect(diff.statusCode).toBe(200);
    expect(diff.headers.get("x-berth-diff-truncated")).toBe("true");
    expect(diff.body).toContain("diff --git a/f.txt b/f.txt\n--- a/f.txt\n+++ b/f.txt\n@@ -1,1 +1,1 @@\n-start\n+changed\n");
    expect(diff.body).toMatch(/# berth: diff cut: \d+ paths shown; ask for one file with \?path=\n$/);
    expect(Buffer.byteLength(diff.body)).toBeLessThanOrEqual(4 * 1024 * 1024 + 200);
  }, 400_000);
});

describe("with archives in an S3-compatible store", () => {
  let s3: S3Store;
  let hs3: Harness;
  let bucket: string;

  beforeAll(async () => {
    s3 = await startS3();
    const b = await s3.bucket("changes");
    bucket = b.bucket;
    hs3 = await startHarness({ BERTH_TASK_TIMEOUT_SECONDS: "300", ...b.env });
  }, 300_000);

  afterAll(async () => {
    const left = hs3 ? await hs3.leftoverContainers() : [];
    await hs3?.close();
    await s3?.stop();
    expect(left).toEqual([]);
  }, 120_000);

  it("keeps the manifest and change list beside the archive, diffs a fromTask chain and removes them with it", async () => {
    const t1 = await hs3.submit({ command: ["sh", "-c", "echo two >> a.txt; echo gone > b.txt"], files: { "a.txt": "one\n" } });
    expect(await hs3.waitFinished(t1.id, 120_000)).toMatchObject({ status: "succeeded" });
    const t2 = await hs3.submit({ command: ["sh", "-c", "echo three >> a.txt; rm b.txt"], fromTask: t1.id });
    expect(await hs3.waitFinished(t2.id, 120_000)).toMatchObject({ status: "succeeded" });
    const keys = await s3.keys(bucket, "changes");
    for (const suffix of [".tar.gz", ".manifest.gz", ".changes.gz"]) expect(keys).toContain(`changes/${t2.workspace}${suffix}`);

    const list = (await hs3.request("GET", `/v1/tasks/${t2.id}/changes`)).json() as ChangeList;
    expect(list.changes.map((c) => [c.path, c.change])).toEqual([
      ["a.txt", "modified"],
      ["b.txt", "deleted"],
    ]);
    const diff = (await hs3.request("GET", `/v1/tasks/${t2.id}/diff`)).body;
    expect(diff).toContain("@@ -1,2 +1,3 @@\n one\n two\n+three\n");
    expect(diff).toContain("-gone\n");
    const delta = await hs3.request("GET", `/v1/tasks/${t2.id}/archive?changes=only`);
    expect(delta.statusCode).toBe(200);
    expect(delta.headers.get("x-berth-sha256")).toBe(sha256(delta.raw));
    expect(await s3.keys(bucket, "changes")).toContain(`changes/${t2.workspace}.changes.tar.gz`);

    expect((await hs3.request("DELETE", `/v1/tasks/${t2.id}`)).statusCode).toBe(204);
    const after = await s3.keys(bucket, "changes");
    expect(after.filter((k) => k.includes(t2.workspace))).toEqual([]);
  }, 300_000);
});

describe("when there is nothing to compare", () => {
  it("answers 409 while the task runs, 400 for a bad ?changes=, and 404 for a missing task", async () => {
    const t = await h.submit({ command: ["sh", "-c", "sleep 30"], timeoutSeconds: 60 });
    const res = await h.request("GET", `/v1/tasks/${t.id}/changes`);
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe("changes_not_available");
    expect((await h.request("GET", `/v1/tasks/${t.id}/archive?changes=all`)).statusCode).toBe(400);
    await h.request("POST", `/v1/tasks/${t.id}/cancel`);
    await h.waitFinished(t.id);
    expect((await h.request("GET", "/v1/tasks/nosuchtask0/changes")).statusCode).toBe(404);
  }, 120_000);
});

function berth(args: string[]) {
  return execa("node", [CLI, ...args], {
    cwd: h.root,
    reject: false,
    timeout: 60_000,
    stripFinalNewline: false,
    env: { BERTH_URL: h.url, BERTH_API_KEY: "" },
  });
}

async function isStale(built: string, srcDir: string): Promise<boolean> {
  const builtAt = await stat(built).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const entries = await readdir(srcDir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (e.isFile() && e.name.endsWith(".ts") && (await stat(path.join(e.parentPath, e.name))).mtimeMs > builtAt) return true;
  }
  return false;
}
