// ArchiveVerifier (src/archive/verify-stream.ts): a new archive is checked while its compressed bytes are written,
// chunk by chunk, and refused before it is published when it is not a sound archive of plain relative entries.
import { randomBytes } from "node:crypto";
import { gzipSync } from "node:zlib";
import { ArchiveVerifier } from "../../src/archive/verify-stream.js";
import { TaskFailure } from "../../src/errors.js";
import { tarGz } from "../helpers/tar-bytes.js";

/** Feeds `bytes` in chunks of `size`; resolves with what `end` says, or the TaskFailure either threw. */
async function verify(bytes: Buffer, size = 1000): Promise<{ entries: number; contentBytes: number } | TaskFailure> {
  const v = new ArchiveVerifier();
  try {
    for (let i = 0; i < bytes.length; i += size) v.write(bytes.subarray(i, i + size));
    return await v.end(new AbortController().signal);
  } catch (err) {
    expect(err).toBeInstanceOf(TaskFailure);
    return err as TaskFailure;
  }
}

describe("ArchiveVerifier", () => {
  it("counts the entries and the files' bytes of a sound archive, however it is cut into chunks", async () => {
    const big = randomBytes(200_000);
    const gz = tarGz([
      { path: "dir/", type: "Directory" },
      { path: "dir/a.txt", type: "File", body: "hello" },
      { path: "big.bin", type: "File", body: big },
      { path: "link", type: "SymbolicLink", linkpath: "/etc/passwd" },
      { path: "hard", type: "Link", linkpath: "dir/a.txt" },
    ]);
    for (const size of [1, 7, 512, 65_536, gz.length]) {
      expect(await verify(gz, size)).toEqual({ entries: 5, contentBytes: 5 + big.length });
    }
  });

  it("accepts an empty archive (only end-of-archive blocks), and nothing that merely looks like one", async () => {
    expect(await verify(gzipSync(Buffer.alloc(10_240)))).toEqual({ entries: 0, contentBytes: 0 });
    const odd = await verify(gzipSync(Buffer.alloc(700)));
    expect(odd).toBeInstanceOf(TaskFailure);
  });

  it.each([
    ["an absolute name", [{ path: "/etc/cron.d/x", type: "File" as const, body: "x" }], /unsafe entry name/],
    ["a '..' component", [{ path: "a/../../x", type: "File" as const, body: "x" }], /unsafe entry name/],
    ["a hardlink out of the archive", [{ path: "h", type: "Link" as const, linkpath: "../../etc/passwd" }], /unsafe hardlink target/],
    ["a FIFO", [{ path: "p", type: "FIFO" as const }], /unexpected FIFO entry/],
  ])("refuses %s, naming the entry", async (_what, entries, message) => {
    const res = await verify(tarGz([{ path: "ok.txt", type: "File", body: "ok" }, ...entries]));
    expect(res).toBeInstanceOf(TaskFailure);
    expect((res as TaskFailure).reason).toBe("archive_failed");
    expect((res as TaskFailure).message).toMatch(message);
  });

  it("refuses a truncated or corrupt stream", async () => {
    const gz = tarGz([{ path: "r.bin", type: "File", body: randomBytes(100_000) }]);
    for (const bad of [gz.subarray(0, gz.length - 100), Buffer.concat([gz.subarray(0, 5000), randomBytes(5000)])]) {
      const res = await verify(bad);
      expect(res).toBeInstanceOf(TaskFailure);
      expect((res as TaskFailure).message).toMatch(/failed verification/);
    }
  });

  it("throws from write as soon as a bad entry has passed, so the writer stops early", () => {
    const v = new ArchiveVerifier();
    const gz = tarGz([
      { path: "/abs", type: "File", body: "x" },
      ...Array.from({ length: 50 }, (_, i) => ({ path: `f${i}`, type: "File" as const, body: randomBytes(10_000) })),
    ]);
    expect(() => {
      for (let i = 0; i < gz.length; i += 512) v.write(gz.subarray(i, i + 512));
    }).toThrow(/unsafe entry name "\/abs"/);
  });
});
