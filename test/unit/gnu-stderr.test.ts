// classifyStderr (src/archive/gnu-stderr.ts): which lines of GNU tar's and find's stderr are per-file warnings
// (the file is reported as skipped, the archive goes on) and which fail the archive.
import { classifyStderr } from "../../src/archive/gnu-stderr.js";

describe("classifyStderr", () => {
  it("reports tar's per-file read warnings as skipped paths, with the reason tar gave", () => {
    const stderr = [
      "tar: secret: Cannot open: Permission denied",
      "tar: dir/locked: Cannot savedir: Permission denied",
      "tar: gone: Cannot stat: No such file or directory",
      "tar: link: Cannot readlink: Permission denied",
      "tar: tmp/x: File removed before we read it",
      "tar: log.txt: file changed as we read it",
      "tar: big.bin: File shrank by 4096 bytes; padding with zeros",
      "tar: bad.bin: Read error at byte 0, while reading 512 bytes: Input/output error",
      "tar: Exiting with failure status due to previous errors",
      "",
    ].join("\n");
    expect(classifyStderr(stderr)).toEqual({
      skipped: [
        { path: "secret", why: "unreadable: Cannot open: Permission denied" },
        { path: "dir/locked", why: "unreadable: Cannot savedir: Permission denied" },
        { path: "gone", why: "unreadable: Cannot stat: No such file or directory" },
        { path: "link", why: "unreadable: Cannot readlink: Permission denied" },
        { path: "tmp/x", why: "unreadable: File removed before we read it" },
        { path: "log.txt", why: "unreadable: file changed as we read it" },
        { path: "big.bin", why: "unreadable: File shrank by 4096 bytes; padding with zeros" },
        { path: "bad.bin", why: "unreadable: Read error at byte 0, while reading 512 bytes: Input/output error" },
      ],
      unknown: [],
    });
  });

  it("reports find's unreadable or vanished directories without their leading ./, whichever quotes find used", () => {
    const stderr = "find: './private': Permission denied\nfind: ‘./a/vanished’: No such file or directory\n";
    expect(classifyStderr(stderr).skipped).toEqual([
      { path: "private", why: "unreadable: Permission denied" },
      { path: "a/vanished", why: "unreadable: No such file or directory" },
    ]);
  });

  it("keeps a name that contains ': ' whole", () => {
    expect(classifyStderr("tar: notes: part 2: draft: Cannot open: Permission denied").skipped).toEqual([
      { path: "notes: part 2: draft", why: "unreadable: Cannot open: Permission denied" },
    ]);
  });

  it("treats anything else as unknown, which fails the archive: a full disk, a write error, a message it does not know", () => {
    const lines = [
      "tar: -: Cannot write: No space left on device",
      "tar: Error is not recoverable: exiting now",
      "tar: x: Cannot open: Permission denied extra words: here",
      "find: './d': Input/output error",
      "gzip: stdout: No space left on device",
    ];
    expect(classifyStderr(lines.join("\n"))).toEqual({ skipped: [], unknown: lines });
  });

  it("finds nothing in empty output", () => {
    expect(classifyStderr("")).toEqual({ skipped: [], unknown: [] });
  });
});
