// The counters behind the API's limits: failed authentications per address, open log streams, log reads at once.
import { FailureCounter } from "../../src/api/auth.js";
import { LogStreamSlots } from "../../src/api/log-streams.js";
import { LogReader, ReadSizer } from "../../src/logs/log-reader.js";
import type { StoredEntry } from "../../src/logs/log-store.js";

describe("FailureCounter", () => {
  it("blocks an address for the rest of its minute once it has failed the allowed number of times", () => {
    const c = new FailureCounter(3);
    const t = 1_000_000;
    for (let i = 0; i < 3; i++) {
      expect(c.blockedFor("a", t)).toBe(0);
      c.record("a", t);
    }
    expect(c.blockedFor("a", t + 10_000)).toBe(50);
    expect(c.blockedFor("b", t)).toBe(0);
    expect(c.blockedFor("a", t + 60_000)).toBe(0);
    c.record("a", t + 60_000);
    expect(c.blockedFor("a", t + 60_001)).toBe(0);
  });

  it("never blocks with a budget of 0, and forgets the oldest address past its size", () => {
    const off = new FailureCounter(0);
    for (let i = 0; i < 100; i++) off.record("a", 0);
    expect(off.blockedFor("a", 0)).toBe(0);
    const small = new FailureCounter(1, 2);
    small.record("a", 0);
    small.record("b", 0);
    small.record("c", 0);
    expect([small.blockedFor("a", 1), small.blockedFor("b", 1), small.blockedFor("c", 1)]).toEqual([0, 60, 60]);
  });
});

describe("LogStreamSlots", () => {
  it("caps streams per tenant and in all with 429s that name the setting, and frees slots once", () => {
    const slots = new LogStreamSlots(3, 2);
    const a1 = slots.acquire("a");
    slots.acquire("a");
    expect(() => slots.acquire("a")).toThrow(/BERTH_TENANT_MAX_LOG_STREAMS allows \(2\)/);
    slots.acquire("b");
    let err: unknown;
    try {
      slots.acquire("c");
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "too_many_streams", details: { retryAfterSeconds: 5 } });
    expect((err as Error).message).toMatch(/BERTH_MAX_LOG_STREAMS allows \(3\)/);
    a1();
    a1();
    expect(slots.open()).toBe(2);
    expect(slots.open("a")).toBe(1);
    slots.acquire("c");
  });
});

describe("LogReader", () => {
  const entry = (n: number): StoredEntry => ({ id: `1-${n}`, stream: "stdout", text: `${n}\n`, timeMs: 1 });

  it("never runs more reads at once than its bound, serves waiters in order, and caps entries per read", async () => {
    let running = 0;
    let most = 0;
    const asked: number[] = [];
    const store = {
      async readAfter(_task: string, after: string, count: number) {
        running++;
        most = Math.max(most, running);
        asked.push(count);
        await new Promise((r) => setTimeout(r, 2));
        running--;
        const from = Number(after.split("-")[1] ?? 0);
        return Array.from({ length: count }, (_, i) => entry(from + i + 1));
      },
      readRawAfter: async () => [],
    };
    const reader = new LogReader(store, 3, 4);
    const order: number[] = [];
    await Promise.all(Array.from({ length: 40 }, (_, i) => reader.readAfter("t", "1-0", 100).then(() => order.push(i))));
    expect(most).toBe(3);
    expect(reader.stats()).toMatchObject({ active: 0, peakActive: 3, waiting: 0, reads: 40 });
    expect(asked.every((c) => c === 4)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
  });

  it("reads plain text only as fast as it is consumed", async () => {
    let reads = 0;
    const store = {
      async readAfter(_task: string, after: string) {
        reads++;
        const from = Number(after.split("-")[1] ?? 0);
        return from >= 100 ? [] : [entry(from + 1)];
      },
      readRawAfter: async () => [],
    };
    const text = new LogReader(store, 1, 1).readText("t", 1024);
    await text.next();
    await text.next();
    expect(reads).toBe(2);
  });
});

describe("ReadSizer", () => {
  it("asks for about the budget's worth of entries, assuming the largest until it has seen some", () => {
    const sizer = new ReadSizer(128 * 1024, 32);
    expect(sizer.count).toBe(2);
    sizer.observe([{ id: "1-1", stream: "stdout", text: "x".repeat(100), timeMs: 1 }]);
    expect(sizer.count).toBe(32);
    sizer.observe([{ id: "1-2", stream: "stdout", text: "x".repeat(40_000), timeMs: 1 }]);
    expect(sizer.count).toBe(3);
  });
});
