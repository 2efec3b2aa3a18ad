// Following output without SSE (API.md §5): GET /v1/tasks/:id/logs?follow=true streams the bytes as printed,
// live, and ends when the task does; text/plain or Docker's multiplexed framing; one stream or both; resumable by
// byte offset; bounded per client like SSE.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { LOG_READS_AT_ONCE } from "../../src/api/server.js";
import { MAX_BUFFERED_BYTES } from "../../src/api/follow-stream.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { logReadsSettled, startStalledReaders } from "../helpers/stalled-readers.js";
import { waitFor, within } from "../helpers/wait-for.js";

const MULTIPLEXED = { accept: "application/vnd.docker.multiplexed-stream" };
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ BERTH_RATE_LIMIT_PER_MINUTE: "0", BERTH_TENANT_MAX_LOG_STREAMS: "20", BERTH_MAX_OUTPUT_BYTES: "20000000" });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

async function get(query: string, id: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${h.url}/v1/tasks/${id}/logs${query}`, { headers });
  return { status: res.status, type: res.headers.get("content-type"), body: Buffer.from(await res.arrayBuffer()) };
}

/** Docker's attach framing → the bytes of each stream, checking every header. */
function demux(body: Buffer): { stdout: Buffer; stderr: Buffer; frames: number } {
  const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  let at = 0;
  let frames = 0;
  while (at < body.length) {
    expect(body.length - at).toBeGreaterThanOrEqual(8);
    const kind = body[at];
    expect([1, 2]).toContain(kind);
    expect([...body.subarray(at + 1, at + 4)]).toEqual([0, 0, 0]);
    const len = body.readUInt32BE(at + 4);
    expect(len).toBeGreaterThan(0);
    (kind === 1 ? out.stdout : out.stderr).push(body.subarray(at + 8, at + 8 + len));
    at += 8 + len;
    frames++;
  }
  expect(at).toBe(body.length);
  return { stdout: Buffer.concat(out.stdout), stderr: Buffer.concat(out.stderr), frames };
}

/**
 * A task that prints to stdout and stderr in turn, each line only once the one before was seen by a follower (the
 * test writes `seen-<n>` into the workspace): the engine reads the two pipes apart, so only this fixes their order.
 */
const INTERLEAVED = [
  "sh",
  "-c",
  "wait_seen() { while [ ! -e seen-$1 ]; do sleep 0.02; done; }; " +
    "for i in 1 2 3 4 5; do echo out-$i; wait_seen $((2*i-1)); echo err-$i >&2; wait_seen $((2*i)); done",
];
const lines = (prefix: string) => [1, 2, 3, 4, 5].map((i) => `${prefix}-${i}\n`);
const OUT = Buffer.from(lines("out").join(""));
const ERR = Buffer.from(lines("err").join(""));
const ALL = Buffer.from([1, 2, 3, 4, 5].map((i) => `out-${i}\nerr-${i}\n`).join(""));
const workspaceFile = (workspace: string, name: string) => readFile(path.join(h.deps.config.dirs.workspaces, workspace, name));

/**
 * Submits INTERLEAVED and follows it in Docker's framing, acknowledging each frame as it arrives; the whole framed
 * body once the task has ended.
 */
async function followInterleaved(): Promise<{ id: string; framed: Buffer; type: string | null }> {
  const t = await h.submit({ command: INTERLEAVED });
  const res = await fetch(`${h.url}/v1/tasks/${t.id}/logs?follow=true`, { headers: MULTIPLEXED });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Buffer[] = [];
  let seen = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(Buffer.from(value));
    // Acknowledge every complete frame so far.
    const body = Buffer.concat(chunks);
    let at = 0;
    let frames = 0;
    while (body.length - at >= 8 && body.length - at >= 8 + body.readUInt32BE(at + 4)) {
      at += 8 + body.readUInt32BE(at + 4);
      frames++;
    }
    for (; seen < frames; seen++) await writeFile(path.join(h.deps.config.dirs.workspaces, t.workspace, `seen-${seen + 1}`), "");
  }
  return { id: t.id, framed: Buffer.concat(chunks), type: res.headers.get("content-type") };
}

describe("raw output", () => {
  it("follows a running task live, as text/plain with stdout and stderr interleaved, and ends when it ends", async () => {
    // The task waits for a file the test writes into its workspace, so the follower provably reads while it runs.
    const t = await h.submit({
      command: [
        "sh",
        "-c",
        "echo before; while [ ! -e go ]; do sleep 0.05; done; echo after >&2; while [ ! -e go2 ]; do sleep 0.05; done; echo done",
      ],
    });
    const res = await fetch(`${h.url}/v1/tasks/${t.id}/logs?follow=true`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (!text.includes("before\n")) {
      const { value, done } = await reader.read();
      expect(done).toBe(false);
      text += Buffer.from(value as Uint8Array).toString();
    }
    expect((await h.get(t.id)).status).toBe("running");
    const view = await h.get(t.id);
    await writeFile(path.join(h.deps.config.dirs.workspaces, view.workspace, "go"), "");
    // stderr's line seen before stdout's next: the engine reads the two pipes apart, so the task waits for it.
    while (!text.includes("after\n")) {
      const { value, done } = await reader.read();
      expect(done).toBe(false);
      text += Buffer.from(value as Uint8Array).toString();
    }
    await writeFile(path.join(h.deps.config.dirs.workspaces, view.workspace, "go2"), "");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    expect(text).toBe("before\nafter\ndone\n");
    // It ended because the task did.
    expect((await h.get(t.id)).status).toBe("succeeded");
  });

  it("gives the bytes exactly as printed, also what is not UTF-8, live and after the task ended", async () => {
    const t = await h.submit({ command: ["sh", "-c", "head -c 300000 /dev/urandom | tee out.bin"] });
    const live = await get("?follow=true&stream=stdout", t.id);
    const done = await h.waitFinished(t.id);
    const printed = await workspaceFile(done.workspace, "out.bin");
    expect(printed.length).toBe(300_000);
    expect(live.body.equals(printed)).toBe(true);
    // Read again once nobody follows it: from the store, as stored.
    expect((await get("?follow=true", t.id)).body.equals(printed)).toBe(true);
    expect((await get("?stream=stdout", t.id)).body.equals(printed)).toBe(true);
  });

  it("frames each stream in Docker's attach framing when asked, and selects one stream", async () => {
    const t = await followInterleaved();
    expect(t.type).toBe("application/vnd.docker.multiplexed-stream");
    const streams = demux(t.framed);
    expect(streams.stdout.toString()).toBe(OUT.toString());
    expect(streams.stderr.toString()).toBe(ERR.toString());
    expect(streams.frames).toBe(10); // one per line: each came on its own

    expect((await get("?follow=true", t.id)).body.toString()).toBe(ALL.toString());
    expect((await get("?follow=true&stream=stderr", t.id)).body.toString()).toBe(ERR.toString());
    const onlyOut = demux((await get("?follow=true&stream=stdout", t.id, MULTIPLEXED)).body);
    expect(onlyOut.stdout.toString()).toBe(OUT.toString());
    expect(onlyOut.stderr.length).toBe(0);
  });

  it("resumes after any number of bytes of the selection", async () => {
    const t = await h.waitFinished((await followInterleaved()).id);
    const all = (await get("?follow=true", t.id)).body;
    const err = (await get("?stream=stderr", t.id)).body;
    expect(all.toString()).toBe(ALL.toString());
    expect(err.toString()).toBe(ERR.toString());
    for (const offset of [0, 1, 7, Math.floor(all.length / 2), all.length - 1, all.length, all.length + 10]) {
      expect((await get(`?follow=true&offset=${offset}`, t.id)).body.equals(all.subarray(offset))).toBe(true);
    }
    for (const offset of [3, err.length - 2]) {
      expect((await get(`?stream=stderr&offset=${offset}`, t.id)).body.equals(err.subarray(offset))).toBe(true);
      const framed = demux((await get(`?follow=true&stream=stderr&offset=${offset}`, t.id, MULTIPLEXED)).body);
      expect(framed.stderr.equals(err.subarray(offset))).toBe(true);
    }
  });

  it("resumes a live follow cut off half-way without a byte lost or repeated", async () => {
    const t = await h.submit({ command: ["sh", "-c", "for i in $(seq 1 30); do echo line-$i; sleep 0.05; done"] });
    const first = await fetch(`${h.url}/v1/tasks/${t.id}/logs?follow=true`);
    const reader = (first.body as ReadableStream<Uint8Array>).getReader();
    let got = Buffer.alloc(0);
    while (!got.toString().includes("line-5\n")) got = Buffer.concat([got, Buffer.from((await reader.read()).value as Uint8Array)]);
    await reader.cancel();
    await waitFor(
      "the cut-off stream's slot to be freed",
      async () => h.app.berthCounters.logStreams(),
      (n) => n === 0,
    );
    const rest = await get(`?follow=true&offset=${got.length}`, t.id);
    const expected = Array.from({ length: 30 }, (_, i) => `line-${i + 1}\n`).join("");
    expect(Buffer.concat([got, rest.body]).toString()).toBe(expected);
  });

  it("without follow, ends with what was recorded so far", async () => {
    const t = await h.submit({ command: ["sh", "-c", "echo early; while [ ! -e go ]; do sleep 0.05; done"] });
    await waitFor(
      "the first line",
      () => get("?stream=stdout", t.id),
      (r) => r.body.toString() === "early\n",
    );
    const view = await h.get(t.id);
    expect(view.status).toBe("running");
    await import("node:fs/promises").then((fs) => fs.writeFile(path.join(h.deps.config.dirs.workspaces, view.workspace, "go"), ""));
    expect((await h.waitFinished(t.id)).status).toBe("succeeded");
  });

  it("refuses what it does not understand with 400 naming the parameter", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["true"] })).id);
    for (const [query, field] of [
      ["?follow=yes", "follow"],
      ["?stream=both", "stream"],
      ["?offset=-1", "offset"],
      ["?offset=1.5", "offset"],
      ["?offset=1&offset=2", "offset"],
    ] as const) {
      const res = await get(query, t.id);
      expect(res.status).toBe(400);
      const body = JSON.parse(res.body.toString()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("invalid_input");
      expect(body.error.message).toMatch(new RegExp(`^Invalid ${field}:`));
    }
    expect((await get("?follow=true", "unknown-task-id-0000")).status).toBe(404);
  });
});

describe("bounds", () => {
  it("reads no further for followers that do not read, and takes a log stream slot each", async () => {
    const big = await h.waitFinished(
      (await h.submit({ command: ["sh", "-c", "head -c 12000000 /dev/urandom | base64 -w 1000"] })).id,
      120_000,
    );
    expect(big.status).toBe("succeeded");
    const before = h.app.berthCounters.logReads().reads;
    const readers = await startStalledReaders({
      url: h.url,
      path: `/v1/tasks/${big.id}/logs?follow=true`,
      authorization: "",
      accept: "text/plain",
      count: 20,
    });
    try {
      await waitFor(
        "20 raw streams to be open",
        async () => h.app.berthCounters.logStreams(),
        (n) => n === 20,
      );
      // Past the tenant's cap of 20: 429, as for SSE.
      expect((await get("?follow=true", big.id)).status).toBe(429);
      const settled = await logReadsSettled(h);
      expect(settled.peakActive).toBeLessThanOrEqual(LOG_READS_AT_ONCE);
      // Each stalled stream was read only as far as its socket takes (see hostile-followers.test.ts), not the
      // ~16 MB of the whole log (~250 entries of 64 KiB).
      const [, , wmemMax] = (await readFile("/proc/sys/net/ipv4/tcp_wmem", "utf8")).trim().split(/\s+/).map(Number) as number[];
      const perStream = Math.ceil(((wmemMax as number) + 2 * MAX_BUFFERED_BYTES) / (64 * 1024)) + 2;
      expect(settled.reads - before).toBeLessThan(20 * perStream);
    } finally {
      await readers.close();
    }
    await waitFor(
      "the slots to be freed",
      async () => h.app.berthCounters.logStreams(),
      (n) => n === 0,
    );
  }, 300_000);
});

describe("server shutdown", () => {
  it("cuts a raw follow when the HTTP server closes: the client sees it broken off, not ended", async () => {
    const local = await startHarness({ BERTH_RATE_LIMIT_PER_MINUTE: "0" });
    try {
      const t = await local.submit({ command: ["sh", "-c", "echo started; while [ ! -e stop ]; do sleep 0.05; done; echo stopped"] });
      const res = await fetch(`${local.url}/v1/tasks/${t.id}/logs?follow=true`);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let got = Buffer.alloc(0);
      while (!got.toString().includes("started\n")) got = Buffer.concat([got, Buffer.from((await reader.read()).value as Uint8Array)]);
      // A follower holding up close() would hold it for as long as the task runs.
      await within(local.app.close(), 60_000, "the HTTP server to close while a raw follower is attached");
      // Broken off, not a normal end (which would mean the task ended): the client resumes from its offset.
      await expect(reader.read()).rejects.toThrow();
      await import("node:fs/promises").then((fs) => fs.writeFile(path.join(local.deps.config.dirs.workspaces, t.workspace, "stop"), ""));
      await waitFor(
        "the task to end",
        () => local.services.store.get(t.id),
        (r) => r?.status === "succeeded",
      );
    } finally {
      await local.close();
    }
  }, 120_000);
});
