// OutputSink against a narrow in-memory LogStore fake: the cap, UTF-8 boundaries, ordering and retries.
import { pino } from "pino";
import type { LogStream } from "../../src/contract/types.js";
import { AppendError, type LogStore } from "../../src/logs/log-store.js";
import { OutputSink } from "../../src/logs/output-sink.js";
import { waitFor } from "../helpers/wait-for.js";

class FakeStore {
  /** Each entry decoded on its own, as a reader of the Redis stream decodes it. */
  entries: { stream: LogStream; text: string; bytes: number }[] = [];
  failuresLeft = 0;
  /** With failuresLeft: how many leading entries of a failing batch are stored anyway (a connection lost mid-way). */
  storedBeforeFailure = 0;
  async append(_id: string, batch: readonly { stream: LogStream; data: Buffer | string }[]) {
    const store = (entries: typeof batch) =>
      this.entries.push(...entries.map((e) => ({ stream: e.stream, text: e.data.toString(), bytes: Buffer.byteLength(e.data) })));
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      const stored = Math.min(this.storedBeforeFailure, batch.length);
      store(batch.slice(0, stored));
      throw new AppendError(new Error("Connection is closed."), stored);
    }
    store(batch);
  }
  text(stream: LogStream) {
    return this.entries
      .filter((e) => e.stream === stream)
      .map((e) => e.text)
      .join("");
  }
}

const logger = pino({ level: "silent" });
const sinkFor = (store: FakeStore, maxBytes = 1_000_000) =>
  new OutputSink(store as unknown as LogStore, "t1", { maxBytes, flushMs: 1, logger });

describe("OutputSink", () => {
  it("keeps a UTF-8 character whole when its bytes arrive in separate chunks", async () => {
    const store = new FakeStore();
    const sink = sinkFor(store);
    const bytes = Buffer.from("a€b");
    for (const b of bytes) sink.write("stdout", Buffer.from([b]));
    await sink.close();
    expect(store.text("stdout")).toBe("a€b");
  });

  it("keeps exactly maxBytes, drops the rest, and says so once in a system note", async () => {
    const store = new FakeStore();
    const sink = sinkFor(store, 10);
    sink.write("stdout", Buffer.from("0123456"));
    sink.write("stderr", Buffer.from("789abc"));
    sink.write("stdout", Buffer.from("more"));
    await sink.close();
    expect(store.text("stdout") + store.text("stderr")).toBe("0123456789");
    expect(sink.truncated).toBe(true);
    const notes = store.text("system").split("\n").filter(Boolean);
    expect(notes).toEqual([
      "output passed BERTH_MAX_OUTPUT_BYTES (10 bytes); further output is dropped, the task goes on",
      "7 bytes of output were dropped (limit 10 bytes)",
    ]);
  });

  it("keeps the order of stdout and stderr and splits long runs into bounded entries", async () => {
    const store = new FakeStore();
    const sink = sinkFor(store);
    sink.write("stdout", Buffer.from("1"));
    sink.write("stderr", Buffer.from("2"));
    sink.write("stdout", Buffer.from("x".repeat(200_000)));
    await sink.close();
    expect(store.entries[0]).toEqual({ stream: "stdout", text: "1", bytes: 1 });
    expect(store.entries[1]).toEqual({ stream: "stderr", text: "2", bytes: 1 });
    expect(store.text("stdout")).toBe(`1${"x".repeat(200_000)}`);
    expect(Math.max(...store.entries.map((e) => e.bytes))).toBeLessThanOrEqual(64 * 1024);
  });

  it("never splits a character between entries, whatever the chunking, and keeps invalid bytes as the decoder would", async () => {
    // Multi-byte characters of every length, invalid bytes, a truncated sequence at the very end.
    const sample = Buffer.concat([
      Buffer.from("a€😀é".repeat(30_000)),
      Buffer.from([0xff, 0x80, 0xe2, 0x82]),
      Buffer.from("ok\n"),
      Buffer.from([0xf0, 0x9f]),
    ]);
    for (const chunkSize of [1, 2, 3, 5, 7, 4096, 65_535, 65_537]) {
      const store = new FakeStore();
      const sink = sinkFor(store);
      for (let i = 0; i < sample.length; i += chunkSize) {
        sink.write("stdout", sample.subarray(i, i + chunkSize));
        if (i % (chunkSize * 97) === 0) sink.write("stderr", Buffer.from("é"));
      }
      await sink.close();
      expect(store.text("stdout")).toBe(sample.toString("utf8"));
      expect(Math.max(...store.entries.map((e) => e.bytes))).toBeLessThanOrEqual(64 * 1024);
    }
  });

  it("does not store twice the entries of a failed batch that Redis stored anyway", async () => {
    const store = new FakeStore();
    store.failuresLeft = 1;
    store.storedBeforeFailure = 2;
    const sink = sinkFor(store);
    const text = "x".repeat(200_000); // four entries in one batch
    sink.write("stdout", Buffer.from(text));
    await sink.close();
    expect(store.text("stdout")).toBe(text);
  });

  it("retries a failing store without losing or reordering output, and notes the outage", async () => {
    const store = new FakeStore();
    store.failuresLeft = 2;
    const sink = sinkFor(store);
    sink.write("stdout", Buffer.from("first\n"));
    // The second write comes while the first is waiting to be retried.
    await waitFor(
      "the first write to fail",
      async () => store.failuresLeft,
      (n) => n === 1,
    );
    sink.write("stdout", Buffer.from("second\n"));
    await sink.close();
    expect(store.text("stdout")).toBe("first\nsecond\n");
    expect(store.entries.some((e) => e.stream === "system" && /unreachable/.test(e.text))).toBe(true);
  });
});
