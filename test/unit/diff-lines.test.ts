// The dashboard's diff colouring: each line of a unified diff gets its role from where it stands, so a file's own
// "--- " or "+++ " lines are removed and added lines, and header lines are never taken for either.
import { describe, expect, it } from "@jest/globals";
import { diffLines } from "../../src/web/diff-lines.js";

const kinds = (text: string) => diffLines(text).map((l) => `${l.kind} ${l.text}`);

describe("diff lines", () => {
  it("tells headers, hunks, added, removed and context lines apart", () => {
    const text = [
      "diff --git a/mod.txt b/mod.txt",
      "index 1111111..2222222 100644",
      "--- a/mod.txt",
      "+++ b/mod.txt",
      "@@ -1,3 +1,3 @@",
      " line1",
      "--- a removed line that looks like a header",
      "+++ an added line that looks like a header",
      "",
      "\\ No newline at end of file",
      "diff --git a/new.txt b/new.txt",
      "new file mode 100644",
      "--- /dev/null",
      "+++ b/new.txt",
      "@@ -0,0 +1 @@",
      "+<script>alert(1)</script>",
      "diff --git a/bin b/bin",
      "Binary files a/bin and b/bin differ",
      "# berth: diff cut: 2 paths shown; ask for one file with ?path=",
      "",
    ].join("\n");
    expect(kinds(text)).toEqual([
      "meta diff --git a/mod.txt b/mod.txt",
      "meta index 1111111..2222222 100644",
      "meta --- a/mod.txt",
      "meta +++ b/mod.txt",
      "hunk @@ -1,3 +1,3 @@",
      "ctx  line1",
      "del --- a removed line that looks like a header",
      "add +++ an added line that looks like a header",
      "ctx ",
      "note \\ No newline at end of file",
      "meta diff --git a/new.txt b/new.txt",
      "meta new file mode 100644",
      "meta --- /dev/null",
      "meta +++ b/new.txt",
      "hunk @@ -0,0 +1 @@",
      "add +<script>alert(1)</script>",
      "meta diff --git a/bin b/bin",
      "meta Binary files a/bin and b/bin differ",
      "note # berth: diff cut: 2 paths shown; ask for one file with ?path=",
    ]);
  });

  it("gives nothing for an empty diff and keeps a last line without a newline", () => {
    expect(diffLines("")).toEqual([]);
    expect(kinds("@@ -1 +1 @@\n-a\n+b")).toEqual(["hunk @@ -1 +1 @@", "del -a", "add +b"]);
  });
});
