// The pure comparison of two manifests (src/domain/manifest.ts) and the unified diff of one change
// (src/domain/unified-diff.ts): no workspace, no archive.
import { createHash } from "node:crypto";
import {
  type ChangeRecord,
  ChangeMerge,
  comparePaths,
  compareEntries,
  entryFromJson,
  entryToJson,
  type ManifestEntry,
  quotePath,
  unquotePath,
} from "../../src/domain/manifest.js";
import { DiffOutput, renderDiff } from "../../src/domain/unified-diff.js";

const hash = (s: string) => createHash("sha256").update(s).digest("hex");
const file = (path: string, text: string, mode = 0o644): ManifestEntry => ({
  path,
  type: "file",
  size: Buffer.byteLength(text),
  mode,
  sha256: hash(text),
});
const dir = (path: string): ManifestEntry => ({ path, type: "dir", size: 0, mode: 0o755, sha256: null });
const link = (path: string, target: string): ManifestEntry => ({
  path,
  type: "symlink",
  size: Buffer.byteLength(target),
  mode: null,
  sha256: null,
  target,
});

function merge(before: ManifestEntry[], after: ManifestEntry[]) {
  const changes: ChangeRecord[] = [];
  const m = new ChangeMerge(before[Symbol.iterator](), (c) => changes.push(c));
  for (const e of after) m.push(e);
  const summary = m.end();
  return { changes: changes.map((c) => [c.path, c.change]), summary };
}

describe("comparePaths", () => {
  it("orders by UTF-8 bytes (as LC_ALL=C sort does), not by UTF-16 code units", () => {
    const names = ["b", "a/b", "a", "a-b", "\u{1F600}", "\uFFFD", "é", "A"];
    const byBytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect([...names].sort(comparePaths)).toEqual(byBytes);
    // A directory sorts before what it holds.
    expect(comparePaths("a", "a/b")).toBeLessThan(0);
  });
});

describe("compareEntries", () => {
  it("compares files by content hash, size and mode, never by anything else", () => {
    expect(compareEntries(file("f", "x"), file("f", "x"))).toBeNull();
    expect(compareEntries(file("f", "x"), file("f", "y"))).toBe("modified");
    expect(compareEntries(file("f", "x"), file("f", "x", 0o755))).toBe("modified");
    expect(compareEntries(file("f", "x"), { ...file("f", "xx"), sha256: null })).toBe("modified");
    // Unhashed on one side (over the archive's per-file bound): same size and mode count as unchanged.
    expect(compareEntries(file("f", "x"), { ...file("f", "x"), sha256: null })).toBeNull();
  });

  it("compares links by their target text, and notices a change of type", () => {
    expect(compareEntries(link("l", "a"), link("l", "a"))).toBeNull();
    expect(compareEntries(link("l", "a"), link("l", "/etc/passwd"))).toBe("modified");
    expect(compareEntries(file("p", "x"), link("p", "/etc/passwd"))).toBe("type_changed");
    expect(compareEntries(dir("d"), file("d", ""))).toBe("type_changed");
    expect(compareEntries(dir("d"), { ...dir("d"), mode: 0o700 })).toBeNull();
  });
});

describe("ChangeMerge", () => {
  it("lists added, modified, deleted and type-changed paths in path order, with the summary", () => {
    const before = [file("a.txt", "one\n"), dir("d"), file("d/x", "xx"), file("gone", "12345"), file("same", "s")];
    const after = [file("a.txt", "one\ntwo\n"), file("d", "now a file"), file("new", "abc"), file("same", "s")];
    expect(merge(before, after)).toEqual({
      changes: [
        ["a.txt", "modified"],
        ["d", "type_changed"],
        ["d/x", "deleted"],
        ["gone", "deleted"],
        ["new", "added"],
      ],
      summary: { added: 1, modified: 1, deleted: 2, typeChanged: 1, bytesAdded: 4 + 10 + 3, bytesRemoved: 2 + 5 },
    });
  });

  it("compares empty manifests, and everything against nothing", () => {
    expect(merge([], []).changes).toEqual([]);
    expect(merge([file("a", "1")], []).changes).toEqual([["a", "deleted"]]);
    expect(merge([], [dir("a"), file("a/b", "1")]).changes).toEqual([
      ["a", "added"],
      ["a/b", "added"],
    ]);
  });

  it("lists an entry pushed out of order (a name that is not UTF-8) as added instead of losing its place", () => {
    const { changes } = merge([file("b", "1")], [file("b", "1"), file("a", "2")]);
    expect(changes).toEqual([["a", "added"]]);
  });

  it("keeps 100,000 entries in one pass", () => {
    const n = 100_000;
    const names = Array.from({ length: n }, (_, i) => `f${i}`).sort(comparePaths);
    const before = names.map((p) => file(p, p));
    const after = names.map((p, i) => (i % 10 === 0 ? file(p, `${p}!`) : file(p, p)));
    const { summary } = merge(before, after);
    expect(summary).toMatchObject({ added: 0, modified: n / 10, deleted: 0, bytesAdded: n / 10 });
  });
});

describe("quotePath and the stored form", () => {
  it("keeps a name holding a newline on one line, and reads it back", () => {
    for (const p of ["plain.txt", "a\nb", 'q"uote', "back\\slash", "tab\there", "\x01ctl", "é ünïcode"]) {
      expect(quotePath(p)).not.toContain("\n");
      expect(unquotePath(quotePath(p))).toBe(p);
    }
    expect(quotePath("a\nb")).toBe('"a\\nb"');
    expect(quotePath("plain.txt")).toBe("plain.txt");
  });

  it("stores entries and reads them back unchanged", () => {
    for (const e of [file("f", "x"), dir("d"), link("l", "/etc/passwd"), { ...file("g", "y"), from: "fromTask" as const }]) {
      expect(entryFromJson(JSON.parse(JSON.stringify(entryToJson(e))))).toEqual(e);
    }
  });
});

describe("renderDiff", () => {
  const change = (before: ManifestEntry | null, after: ManifestEntry | null): ChangeRecord => ({
    path: (before ?? after)?.path as string,
    change: !before ? "added" : !after ? "deleted" : before.type !== after.type ? "type_changed" : "modified",
    before,
    after,
  });
  const bytes = (s: string | Buffer) => ({ kind: "bytes" as const, bytes: Buffer.from(s) });

  it("shows a modified text file as git does", () => {
    const text = renderDiff(change(file("m.txt", "a\nb\nc\n"), file("m.txt", "a\nB\nc\n")), bytes("a\nb\nc\n"), bytes("a\nB\nc\n"));
    expect(text).toBe("diff --git a/m.txt b/m.txt\n--- a/m.txt\n+++ b/m.txt\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
  });

  it("names binary files and files it did not read instead of diffing them", () => {
    const bin = renderDiff(change(null, file("b.bin", "\0\x01")), null, bytes("\0\x01"));
    expect(bin).toBe("diff --git a/b.bin b/b.bin\nnew file mode 100644\nBinary files /dev/null and b/b.bin differ\n");
    const unread = renderDiff(change(file("big", "x"), file("big", "y")), { kind: "unread", why: "too big" }, bytes("y"));
    expect(unread).toBe("diff --git a/big b/big\n# berth: not diffed: too big\n");
  });

  it("shows a file turned into a link as a deletion and the link's target text, never what it points to", () => {
    const text = renderDiff(change(file("p", "secret\n"), link("p", "/etc/passwd")), bytes("secret\n"), null);
    expect(text).toContain("deleted file mode 100644\n--- a/p\n+++ /dev/null\n@@ -1,1 +0,0 @@\n-secret\n");
    expect(text).toContain("new file mode 120000\n--- /dev/null\n+++ b/p\n@@ -0,0 +1,1 @@\n+/etc/passwd\n\\ No newline at end of file\n");
  });

  it("quotes a name holding a newline, as git does", () => {
    expect(renderDiff(change(null, file("a\nb", "x\n")), null, bytes("x\n"))).toMatch(/^diff --git "a\/a\\nb" "b\/a\\nb"\n/);
  });
});

describe("DiffOutput", () => {
  it("keeps whole files while they fit, then stops and says it was cut", () => {
    const out = new DiffOutput(10);
    expect(out.add("12345\n")).toBe(true);
    expect(out.add("6789\n")).toBe(false);
    expect(out.cut).toBe(true);
    expect(out.text()).toBe("12345\n");
    expect(out.add("1\n")).toBe(false);
  });

  it("cuts a first file alone at a line", () => {
    const out = new DiffOutput(10);
    expect(out.add("123\n456\n789\nabc\n")).toBe(false);
    expect(out.text()).toBe("123\n456\n");
  });
});
