// FindSplitter (src/archive/find-listing.ts): find's `%y %s %n %P\0` records in, tar's NUL-separated names out;
// whatever is left out is reported. Fed in memory, in chunks that cut records anywhere.
import { Readable } from "node:stream";
import { FindSplitter } from "../../src/archive/find-listing.js";

const record = (type: string, size: number, name: string | Buffer, links = 1) =>
  Buffer.concat([Buffer.from(`${type} ${size} ${links} `), typeof name === "string" ? Buffer.from(name) : name, Buffer.alloc(1)]);

/** Runs the splitter over `input` cut into `chunkBytes`-byte chunks; returns tar's list and the splitter. */
async function split(input: Buffer, maxFileBytes: number, chunkBytes = input.length || 1) {
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += chunkBytes) chunks.push(input.subarray(i, i + chunkBytes));
  const splitter = new FindSplitter(maxFileBytes);
  const out: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    splitter.on("data", (b: Buffer) => out.push(b));
    splitter.on("end", resolve);
    splitter.on("error", reject);
  });
  Readable.from(chunks).pipe(splitter);
  await done;
  return { names: Buffer.concat(out), splitter };
}

const names = (b: Buffer) => b.toString("latin1").split("\0").slice(0, -1);

describe("FindSplitter", () => {
  const listing = Buffer.concat([
    record("d", 4096, "src"),
    record("f", 10, "src/a.txt"),
    record("l", 7, "src/link"),
    record("f", 101, "big.bin"),
    record("p", 0, "fifo"),
    record("s", 0, "sock"),
    record("c", 0, "tty"),
    record("b", 0, "disk"),
    record("D", 0, "door"),
    record("f", 100, "exactly-max"),
  ]);

  it("passes directories, links and files up to the limit to tar, and reports everything else", async () => {
    const { names: out, splitter } = await split(listing, 100);
    expect(names(out)).toEqual(["src", "src/a.txt", "src/link", "exactly-max"]);
    expect(splitter.listed).toBe(4);
    expect(splitter.skipped).toEqual([
      { path: "big.bin", why: "file larger than 100 bytes (101 bytes)" },
      { path: "fifo", why: "named pipe (FIFO) not archived" },
      { path: "sock", why: "socket not archived" },
      { path: "tty", why: "character device not archived" },
      { path: "disk", why: "block device not archived" },
      { path: "door", why: 'file type "D" not archived' },
    ]);
  });

  it("gives the same result whatever the chunk boundaries", async () => {
    const whole = await split(listing, 100);
    for (const size of [1, 2, 3, 7, 16]) {
      const cut = await split(listing, 100, size);
      expect(cut.names.equals(whole.names)).toBe(true);
      expect(cut.splitter.skipped).toEqual(whole.splitter.skipped);
    }
  });

  it("passes names as raw bytes: not UTF-8, with newlines, or looking like options", async () => {
    const odd = [
      Buffer.from([0x74, 0xff, 0xfe]),
      Buffer.from("two\nlines"),
      Buffer.from("--to-command=rm -rf /"),
      Buffer.from(" lead space"),
    ];
    const { names: out } = await split(Buffer.concat(odd.map((n) => record("f", 1, n))), 100, 5);
    expect(out.equals(Buffer.concat(odd.flatMap((n) => [n, Buffer.alloc(1)])))).toBe(true);
  });

  it("fails when find's output ends inside a record", async () => {
    await expect(split(Buffer.concat([record("f", 1, "ok"), Buffer.from("f 1 1 cut-off")]), 100)).rejects.toThrow(
      "find's output ended inside a record",
    );
  });

  it("tells its observer of every path left out and of every file with more than one link", async () => {
    const left: [string, string, number][] = [];
    const linked: string[] = [];
    const observer = { left: (p: string, t: string, n: number) => left.push([p, t, n]), multiLinked: (p: string) => linked.push(p) };
    const input = Buffer.concat([record("f", 5, "one", 2), record("f", 5, "two"), record("p", 0, "fifo"), record("f", 101, "big", 3)]);
    const splitter = new FindSplitter(100, observer);
    const done = new Promise((resolve, reject) => splitter.on("finish", resolve).on("error", reject));
    splitter.resume();
    splitter.end(input);
    await done;
    expect(left).toEqual([
      ["fifo", "p", 0],
      ["big", "f", 101],
    ]);
    expect(linked).toEqual(["one"]);
  });

  it("refuses a record that is not four fields", async () => {
    await expect(split(Buffer.from("f 1 name-without-links\0"), 100)).rejects.toThrow('not "type size links name"');
  });

  it("lists at most 1000 skipped paths", async () => {
    const fifos = Buffer.concat(Array.from({ length: 1005 }, (_, i) => record("p", 0, `fifo-${i}`)));
    const { splitter } = await split(fifos, 100);
    expect(splitter.skipped).toHaveLength(1000);
    expect(splitter.listed).toBe(0);
  });
});
