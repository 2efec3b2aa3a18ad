// The client SDK against a real berth (API + worker on the real Docker engine and Redis).
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  BerthApiError,
  BerthClient,
  SseParser,
  type FollowEvent,
  type FollowLogEvent,
  type OutputEvent,
  type SseMessage,
} from "../../src/client/index.js";
import { startHarness, type Harness } from "../helpers/harness.js";

let h: Harness;
let client: BerthClient;
let dir: string;

beforeAll(async () => {
  h = await startHarness();
  client = new BerthClient({ url: h.url });
  dir = await mkdtemp(path.join(tmpdir(), "berth-client-test-"));
}, 120_000);

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  expect(left).toEqual([]);
}, 120_000);

const WAIT = { timeoutMs: 150_000, pollMs: 200 };
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function collect(events: AsyncIterable<FollowEvent>, onLog?: (e: FollowLogEvent) => void) {
  const logs: FollowLogEvent[] = [];
  const ends: FollowEvent[] = [];
  for await (const e of events) {
    if (e.type === "end") ends.push(e);
    else {
      logs.push(e);
      onLog?.(e);
    }
  }
  const text = (stream: string) =>
    logs
      .filter((e) => e.stream === stream)
      .map((e) => e.text)
      .join("");
  return {
    logs,
    ends,
    text,
    output: logs
      .filter((e) => e.stream !== "system")
      .map((e) => e.text)
      .join(""),
  };
}

/** Entry ids (`<ms>-<seq>`) must strictly increase: no duplicate, no reordering. */
function expectIncreasingIds(logs: readonly FollowLogEvent[]): void {
  const key = (id: string) => id.split("-").map((p) => BigInt(p));
  for (let i = 1; i < logs.length; i++) {
    const [a, b] = [key(logs[i - 1]!.id), key(logs[i]!.id)];
    expect(a[0]! < b[0]! || (a[0] === b[0] && a[1]! < b[1]!)).toBe(true);
  }
}

describe("SseParser", () => {
  const stream =
    '\uFEFF: hello\r\nid: 1-0\r\nevent: log\r\ndata: {"a":1}\r\n\r\n' +
    "event: log\rdata:first\rdata: second\r\rretry: 1500\n: comment\nid: 2-5\ndata\n\n" +
    "event: end\ndata: {}\n\nevent: log\ndata: cut off";
  const expected: SseMessage[] = [
    { event: "log", data: '{"a":1}', id: "1-0" },
    { event: "log", data: "first\nsecond", id: "1-0" },
    { event: "message", data: "", id: "2-5" },
    { event: "end", data: "{}", id: "2-5" },
  ];

  it("parses LF, CRLF and CR line ends, comments, multi-line data and ids, split anywhere", () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      for (const step of [1, 2, 7]) {
        const p = new SseParser();
        const out = [...p.push(stream.slice(0, cut))];
        for (let i = cut; i < stream.length; i += step) out.push(...p.push(stream.slice(i, i + step)));
        expect(out).toEqual(expected);
        expect(p.retryMs).toBe(1500);
      }
    }
  });

  it("hands comments to onComment when asked, and yields the same events", () => {
    for (const step of [1, 3, stream.length]) {
      const comments: string[] = [];
      const p = new SseParser("", { onComment: (text) => comments.push(text) });
      const out: SseMessage[] = [];
      for (let i = 0; i < stream.length; i += step) out.push(...p.push(stream.slice(i, i + step)));
      expect(out).toEqual(expected);
      expect(comments).toEqual(["hello", "comment"]);
    }
  });
});

describe("tasks", () => {
  it("submits, gets, waits, reads logs and files", async () => {
    const t = await client.submit({
      command: ["sh", "-c", "mkdir -p src && echo hi > 'src/a b.txt' && echo done"],
      labels: { suite: "client" },
    });
    expect(t.id).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    expect((await client.get(t.id)).command).toEqual(t.command);
    const done = await client.wait(t.id, WAIT);
    expect(done).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect(await client.logs(t.id)).toBe("done\n");
    const listing = await client.files(t.id);
    expect(listing.files).toEqual(expect.arrayContaining([expect.objectContaining({ path: "src/a b.txt", type: "file", size: 3 })]));
    expect((await client.readFile(t.id, "src/a b.txt")).toString()).toBe("hi\n");
    await expect(client.readFile(t.id, "../logs")).rejects.toMatchObject({ code: "invalid_input" });
  });

  it("returns the same task for the same idempotency key", async () => {
    const a = await client.submit({ command: ["true"] }, { idempotencyKey: "client-test-key" });
    const b = await client.submit({ command: ["true"] }, { idempotencyKey: "client-test-key" });
    expect(b.id).toBe(a.id);
    await client.wait(a.id, WAIT);
  });

  it("turns error bodies into BerthApiError with the server's code and message", async () => {
    const missing = await client.get("doesnotexist123").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(BerthApiError);
    expect(missing).toMatchObject({ status: 404, code: "not_found" });
    const bad = await client.submit({ command: ["true"], env: { "1BAD": "x" } }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 400, code: "invalid_input" });
    expect((bad as Error).message).toMatch(/env/);
  });

  it("reports a server that does not answer as unreachable, naming the URL", async () => {
    const port = await freePort();
    const err = await new BerthClient({ url: `http://127.0.0.1:${port}` }).get("abcdefgh").catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 0, code: "unreachable" });
    expect((err as Error).message).toContain(`http://127.0.0.1:${port}`);
  });

  it("pages through the list with cursors, newest first", async () => {
    const label = `page-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.submit({ command: ["true"], labels: { page: label } })).id);
    const first = await client.list({ label: `page:${label}`, limit: 2 });
    expect(first.tasks).toHaveLength(2);
    expect(first.nextCursor).not.toBeNull();
    const second = await client.list({ label: ["page", label], limit: 2, cursor: first.nextCursor! });
    expect(second.tasks.map((t) => t.id)).not.toContain(first.tasks[0]!.id);
    const all: string[] = [];
    for await (const t of client.listAll({ label: `page:${label}`, limit: 2 })) all.push(t.id);
    expect(all).toEqual([...ids].reverse());
    for (const id of ids) await client.wait(id, WAIT);
  });
});

describe("follow", () => {
  it("yields stdout byte-exact for ~1.5 MB of output, then one end marker", async () => {
    const t = await client.submit({ command: ["sh", "-c", "head -c 1500000 /dev/urandom | base64; echo bye >&2"] });
    const { logs, ends, text, output } = await collect(client.follow(t.id));
    expect(ends).toEqual([{ type: "end", status: "succeeded", exitCode: 0 }]);
    expect(text("stdout")).toHaveLength(2_026_316); // 2,000,000 base64 chars + a newline per 76
    expect(text("stderr")).toBe("bye\n");
    expect(output).toBe(await client.logs(t.id));
    expectIncreasingIds(logs);
  }, 180_000);

  it("resumes after dropped connections without gaps or duplicates", async () => {
    const proxy = new CuttingProxy(Number(new URL(h.url).port));
    const port = await proxy.start(0);
    try {
      const viaProxy = new BerthClient({ url: `http://127.0.0.1:${port}` });
      // It ticks until the test lets it stop, which it does once the client is back after the proxy's outage.
      const t = await viaProxy.submit({
        command: [
          "sh",
          "-c",
          "head -c 300000 /dev/urandom | base64; i=0; while [ ! -e stop ]; do i=$((i+1)); echo tick $i; echo tock $i >&2; sleep 0.1; done; echo stopped",
        ],
        timeoutSeconds: 300,
      });
      // The first connection is cut mid-event after 100 kB; later, the proxy dies and comes back on the same port.
      proxy.cutAfter(100_000);
      const reconnects: unknown[] = [];
      let killed = false;
      let failuresWhileDown = 0;
      let ticksAfterOutage = 0;
      const onReconnect = (_n: number, err: unknown) => {
        reconnects.push(err);
        // The first failure after the kill is the dropped connection, the second a refused one: then it comes back.
        if (killed && ++failuresWhileDown === 2) void proxy.start(port);
      };
      const { logs, ends, output, text } = await collect(viaProxy.follow(t.id, { onReconnect }), (e) => {
        if (!killed && e.text.includes("tick 5\n")) {
          killed = true;
          proxy.stop();
        } else if (failuresWhileDown >= 2 && e.stream === "stdout" && ++ticksAfterOutage === 5) {
          void writeFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "stop"), "");
        }
      });
      expect(failuresWhileDown).toBeGreaterThanOrEqual(2);
      expect(proxy.cuts).toBeGreaterThanOrEqual(1);
      expect(reconnects.length).toBeGreaterThanOrEqual(2);
      expect(ends).toEqual([{ type: "end", status: "succeeded", exitCode: 0 }]);
      expect(output).toBe(await client.logs(t.id));
      expect(text("stdout")).toMatch(/\ntick 1\ntick 2\n[\s\S]*\ntick 5\n[\s\S]*\nstopped\n$/);
      expectIncreasingIds(logs);
      expect(new Set(logs.map((e) => e.id)).size).toBe(logs.length);
    } finally {
      proxy.stop();
    }
  }, 180_000);

  it("resumes strictly after a given entry", async () => {
    const t = await client.submit({ command: ["sh", "-c", "echo one; echo two; echo three"] });
    await client.wait(t.id, WAIT);
    const all = await collect(client.follow(t.id));
    const first = all.logs.find((e) => e.stream === "stdout")!;
    const rest = await collect(client.follow(t.id, { after: first.id }));
    expect(rest.logs.map((e) => e.id)).toEqual(all.logs.slice(all.logs.indexOf(first) + 1).map((e) => e.id));
    expect(rest.ends).toHaveLength(1);
  });
});

/** The raw output's events → each stream's bytes, the end markers, and whether every offset followed on. */
async function collectOutput(events: AsyncIterable<OutputEvent>, onChunk?: (all: number) => void) {
  const parts = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  const ends: Extract<OutputEvent, { type: "end" }>[] = [];
  const offsets: [number, number][] = [];
  let total = 0;
  for await (const e of events) {
    if (e.type === "end") ends.push(e);
    else {
      offsets.push([e.offset, total]);
      parts[e.stream].push(Buffer.from(e.data));
      total += e.data.length;
      onChunk?.(total);
    }
  }
  return {
    stdout: Buffer.concat(parts.stdout),
    stderr: Buffer.concat(parts.stderr),
    ends,
    contiguous: offsets.every(([at, expected]) => at === expected),
  };
}

describe("followOutput", () => {
  it("yields stdout and stderr apart, byte-exact also where not UTF-8, then one end marker with the view", async () => {
    const t = await client.submit({ command: ["sh", "-c", "head -c 400000 /dev/urandom | tee out.bin; printf 'e\\377\\n' >&2; exit 3"] });
    const got = await collectOutput(client.followOutput(t.id));
    const printed = await readFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "out.bin"));
    expect(printed.length).toBe(400_000);
    expect(got.stdout.equals(printed)).toBe(true);
    expect(got.stderr.equals(Buffer.from([0x65, 0xff, 0x0a]))).toBe(true);
    expect(got.contiguous).toBe(true);
    expect(got.ends).toHaveLength(1);
    expect(got.ends[0]).toMatchObject({ type: "end", status: "failed", exitCode: 3, task: { id: t.id, status: "failed", exitCode: 3 } });
  }, 180_000);

  it("resumes after dropped connections at the byte offset reached, without gaps or duplicates", async () => {
    const proxy = new CuttingProxy(Number(new URL(h.url).port));
    const port = await proxy.start(0);
    try {
      const viaProxy = new BerthClient({ url: `http://127.0.0.1:${port}` });
      // Prints 300 kB, then ticks until the test lets it stop (once the client is back after the proxy's outage).
      const t = await viaProxy.submit({
        command: [
          "sh",
          "-c",
          "head -c 300000 /dev/urandom > a.bin; cat a.bin; i=0; while [ ! -e stop ]; do i=$((i+1)); echo tick $i; echo tock $i >&2; sleep 0.1; done; echo stopped",
        ],
        timeoutSeconds: 300,
      });
      proxy.cutAfter(100_000); // the first connection is cut mid-frame
      const reconnects: unknown[] = [];
      let killed = false;
      let failuresWhileDown = 0;
      let chunksAfterOutage = 0;
      const onReconnect = (_n: number, err: unknown) => {
        reconnects.push(err);
        if (killed && ++failuresWhileDown === 2) void proxy.start(port);
      };
      const got = await collectOutput(viaProxy.followOutput(t.id, { onReconnect }), (total) => {
        if (!killed && total > 300_000 + 40) {
          killed = true;
          proxy.stop();
        } else if (failuresWhileDown >= 2 && ++chunksAfterOutage === 5) {
          void writeFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "stop"), "");
        }
      });
      expect(proxy.cuts).toBeGreaterThanOrEqual(1);
      expect(failuresWhileDown).toBeGreaterThanOrEqual(2);
      expect(got.contiguous).toBe(true);
      expect(got.ends).toMatchObject([{ type: "end", status: "succeeded", exitCode: 0 }]);
      const first = await readFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "a.bin"));
      expect(got.stdout.subarray(0, first.length).equals(first)).toBe(true);
      const ticks = got.stdout.subarray(first.length).toString("latin1");
      const n = ticks.split("\n").length - 2;
      expect(n).toBeGreaterThanOrEqual(5);
      expect(ticks).toBe(`${Array.from({ length: n }, (_, i) => `tick ${i + 1}\n`).join("")}stopped\n`);
      expect(got.stderr.toString()).toBe(Array.from({ length: n }, (_, i) => `tock ${i + 1}\n`).join(""));
    } finally {
      proxy.stop();
    }
  }, 180_000);

  it("starts after a given number of bytes of one stream", async () => {
    const t = await client.submit({ command: ["sh", "-c", "echo one; echo ERR >&2; echo two; echo three"] });
    await client.wait(t.id, WAIT);
    const out = await collectOutput(client.followOutput(t.id, { stream: "stdout", offset: 5 }));
    expect(out.stdout.toString()).toBe("wo\nthree\n");
    expect(out.stderr.length).toBe(0);
    expect(out.ends).toHaveLength(1);
    const err = await collectOutput(client.followOutput(t.id, { stream: "stderr" }));
    expect(err.stderr.toString()).toBe("ERR\n");
  });
});

describe("download", () => {
  let id: string;
  beforeAll(async () => {
    const t = await client.submit({
      command: ["sh", "-c", "mkdir -p src && echo hello > src/a.txt && head -c 200000 /dev/urandom > blob"],
    });
    id = (await client.wait(t.id, WAIT)).id;
  }, 180_000);

  it("writes the archive to a file, verified against the view's sha256, with progress", async () => {
    const view = await client.get(id);
    const file = path.join(dir, "out.tar.gz");
    const progress: [number, number | null][] = [];
    const result = await client.download(id, { file, onProgress: (b, total) => progress.push([b, total]) });
    const bytes = await readFile(file);
    expect(result).toEqual({ path: file, bytes: bytes.length, sha256: view.archive!.sha256 });
    expect(sha256(bytes)).toBe(view.archive!.sha256);
    expect(bytes.length).toBe(view.archive!.bytes);
    expect(progress.at(-1)).toEqual([bytes.length, bytes.length]);
  });

  it("returns a stream of the same bytes", async () => {
    const stream = await client.download(id, { stream: true });
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(sha256(Buffer.concat(chunks))).toBe((await client.get(id)).archive!.sha256);
  });

  it("refuses corrupt bytes and leaves no file behind", async () => {
    const corrupting: typeof fetch = async (input, init) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith("/archive")) return res;
      const buf = Buffer.from(await res.arrayBuffer());
      buf[buf.length - 1]! ^= 0xff;
      return new Response(buf, { status: res.status, headers: res.headers });
    };
    const sub = await mkdtemp(path.join(dir, "corrupt-"));
    const file = path.join(sub, "bad.tar.gz");
    const err = await new BerthClient({ url: h.url, fetch: corrupting }).download(id, { file }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "checksum_mismatch" });
    expect(await readdir(sub)).toEqual([]);
  });

  it("answers 409 archive_not_ready for a task that is still running", async () => {
    const t = await client.submit({ command: ["sleep", "600"] });
    await expect(client.download(t.id, { file: path.join(dir, "never.tar.gz") })).rejects.toMatchObject({
      status: 409,
      code: "archive_not_ready",
    });
    await client.cancel(t.id);
    expect((await client.wait(t.id, WAIT)).status).toBe("canceled");
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** A TCP proxy to the server that can cut a connection mid-stream, or die entirely and come back. */
class CuttingProxy {
  cuts = 0;
  #budget: number | undefined;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(readonly targetPort: number) {}

  /** Cuts the connection carrying the server's `bytes`-th byte from now, mid-write. */
  cutAfter(bytes: number): void {
    this.#budget = bytes;
  }

  async start(port: number): Promise<number> {
    const server = createServer((down) => {
      const up = connect(this.targetPort, "127.0.0.1");
      this.#sockets.add(down).add(up);
      up.on("data", (chunk: Buffer) => {
        if (this.#budget !== undefined && chunk.length >= this.#budget) {
          down.write(chunk.subarray(0, this.#budget));
          this.#budget = undefined;
          this.cuts += 1;
          down.destroy();
          up.destroy();
          return;
        }
        if (this.#budget !== undefined) this.#budget -= chunk.length;
        down.write(chunk);
      });
      down.pipe(up);
      const close = () => {
        down.destroy();
        up.destroy();
        this.#sockets.delete(down);
        this.#sockets.delete(up);
      };
      up.on("error", close).on("close", close);
      down.on("error", close).on("close", close);
    });
    this.#server = server;
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    return (server.address() as { port: number }).port;
  }

  stop(): void {
    this.#server?.close();
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }
}
