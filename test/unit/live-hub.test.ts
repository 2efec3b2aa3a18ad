// LiveHub ordering under races the integration tests cannot time: a follower joining while a store read is in flight.
import { LiveHub, compareIds, type Follower } from "../../src/logs/live-hub.js";
import type { LogStore, StoredEntry } from "../../src/logs/log-store.js";
import { waitFor } from "../helpers/wait-for.js";

const entry = (n: number): StoredEntry => ({ id: `1000-${n}`, stream: "stdout", text: `${n}\n`, timeMs: 1000 });

/** A log store whose reads stay pending until the test releases them (or `auto` is set). */
class GatedLogs {
  readonly entries: StoredEntry[] = [];
  readonly pending: { after: string; release: () => void }[] = [];
  maxInFlight = 0;
  /** Reads answered so far. */
  answered = 0;
  auto = false;

  readAfter(_taskId: string, after: string, count: number): Promise<StoredEntry[]> {
    return new Promise((resolve) => {
      const release = () => {
        this.pending.splice(this.pending.indexOf(call), 1);
        this.answered++;
        resolve(this.entries.filter((e) => compareIds(e.id, after) > 0).slice(0, count));
      };
      const call = { after, release };
      this.pending.push(call);
      this.maxInFlight = Math.max(this.maxInFlight, this.pending.length);
      if (this.auto) setImmediate(release);
    });
  }
}

/** Lets the hub make (and get answers to) `n` more reads: whatever they could deliver has been delivered. */
async function morePolls(logs: GatedLogs, n: number): Promise<void> {
  const from = logs.answered;
  await waitFor(
    `${n} more reads`,
    async () => logs.answered,
    (answered) => answered >= from + n,
  );
}

class Recorder implements Follower {
  readonly got: string[] = [];
  constructor(
    public lastId: string,
    private readonly accept = () => true,
  ) {}
  deliver(entries: readonly StoredEntry[]): boolean {
    for (const e of entries) {
      this.got.push(e.id);
      this.lastId = e.id;
    }
    return this.accept();
  }
}

describe("LiveHub", () => {
  it("never leaves a gap for a follower that joins behind the hub while a read is in flight", async () => {
    const logs = new GatedLogs();
    const hub = new LiveHub(logs as unknown as LogStore, 5);
    logs.entries.push(entry(1), entry(2));
    const a = new Recorder("0");
    const b = new Recorder("1000-1");
    const stops = [hub.follow("t", a)];
    try {
      await waitFor(
        "first read",
        async () => logs.pending.length,
        (n) => n === 1,
      );
      logs.pending[0]?.release();
      await waitFor(
        "A to get 1 and 2",
        async () => a.got.length,
        (n) => n === 2,
      );

      // The next read (strictly after 1000-2) is in flight when B joins, having read only up to 1000-1 itself.
      await waitFor(
        "second read",
        async () => logs.pending.length,
        (n) => n === 1,
      );
      expect(logs.pending[0]?.after).toBe("1000-2");
      logs.entries.push(entry(3));
      stops.push(hub.follow("t", b));
      logs.pending[0]?.release();
      logs.auto = true;
      for (const p of [...logs.pending]) p.release();

      await waitFor(
        "B to catch up",
        async () => b.got.length,
        (n) => n >= 2,
        { timeoutMs: 5000 },
      );
      await morePolls(logs, 3); // nothing more may arrive
      expect(b.got).toEqual(["1000-2", "1000-3"]);
      expect(a.got).toEqual(["1000-1", "1000-2", "1000-3"]);
      expect(logs.maxInFlight).toBe(1); // one read per task at a time, however followers come and go
    } finally {
      for (const stop of stops) stop();
    }
  });

  it("stops delivering to a follower that declines, and keeps serving the others", async () => {
    const logs = new GatedLogs();
    logs.auto = true;
    const hub = new LiveHub(logs as unknown as LogStore, 5);
    logs.entries.push(entry(1));
    const slow = new Recorder("0", () => false);
    const fast = new Recorder("0");
    const stops = [hub.follow("t", slow), hub.follow("t", fast)];
    try {
      await waitFor(
        "both to get entry 1",
        async () => slow.got.length + fast.got.length,
        (n) => n === 2,
      );
      logs.entries.push(entry(2));
      await waitFor(
        "fast to get entry 2",
        async () => fast.got.length,
        (n) => n === 2,
      );
      expect(slow.got).toEqual(["1000-1"]);
    } finally {
      for (const stop of stops) stop();
    }
  });

  it("hands appended entries at once only to followers they directly continue; the others catch up by reading", async () => {
    const logs = new GatedLogs();
    const hub = new LiveHub(logs as unknown as LogStore, 5);
    logs.entries.push(entry(1), entry(2));
    const current = new Recorder("1000-2");
    const behind = new Recorder("1000-1");
    const stops = [hub.follow("t", current), hub.follow("t", behind)];
    try {
      expect(hub.wants("t")).toBe(true);
      expect(hub.wants("other")).toBe(false);
      logs.entries.push(entry(3), entry(4));
      hub.appended("t", "1000-2", [entry(3), entry(4)]);
      // No read has been answered yet: only the follower at 1000-2 can take 3 and 4 without a gap.
      expect(current.got).toEqual(["1000-3", "1000-4"]);
      expect(behind.got).toEqual([]);
      // A batch whose predecessor is unknown goes to nobody; the reads serve it.
      logs.entries.push(entry(5));
      hub.appended("t", null, [entry(5)]);
      expect(current.got).toEqual(["1000-3", "1000-4"]);
      // A follower inside the batch gets only what it lacks.
      const inside = new Recorder("1000-5");
      stops.push(hub.follow("t", inside));
      logs.entries.push(entry(6));
      hub.appended("t", "1000-4", [entry(5), entry(6)]);
      expect(current.got).toEqual(["1000-3", "1000-4", "1000-5", "1000-6"]);
      expect(inside.got).toEqual(["1000-6"]);

      logs.auto = true;
      for (const p of [...logs.pending]) p.release();
      await waitFor(
        "the follower behind to catch up",
        async () => behind.got.length,
        (n) => n >= 5,
        { timeoutMs: 5000 },
      );
      await morePolls(logs, 3);
      expect(behind.got).toEqual(["1000-2", "1000-3", "1000-4", "1000-5", "1000-6"]);
      expect(current.got).toEqual(["1000-3", "1000-4", "1000-5", "1000-6"]);
      expect(inside.got).toEqual(["1000-6"]);
    } finally {
      for (const stop of stops) stop();
    }
    expect(hub.wants("t")).toBe(false);
  });

  it("keeps a bounded cache of a task's latest entries for clients catching up, while any client has it open", () => {
    const hub = new LiveHub(new GatedLogs() as unknown as LogStore, 5);
    const big = (n: number): StoredEntry => ({ id: `2000-${n}`, stream: "stdout", text: "x".repeat(1024 * 1024), timeMs: 2000 });
    expect(hub.recentAfter("t", "0", 10)).toBeNull();
    const close = hub.open("t");
    expect(hub.wants("t")).toBe(true);
    hub.appended("t", "2000-0", [big(1), big(2)]);
    expect(hub.recentAfter("t", "2000-0", 10)?.map((e) => e.id)).toEqual(["2000-1", "2000-2"]);
    expect(hub.recentAfter("t", "2000-1", 10)?.map((e) => e.id)).toEqual(["2000-2"]);
    expect(hub.recentAfter("t", "2000-2", 10)).toEqual([]); // up to date with what the hub has seen
    expect(hub.recentAfter("t", "1999-9", 10)).toBeNull(); // older than the cache: read the store
    // A batch that does not continue the cache replaces it (no gap can be served from it).
    hub.appended("t", "2000-5", [big(6)]);
    expect(hub.recentAfter("t", "2000-2", 10)).toBeNull();
    expect(hub.recentAfter("t", "2000-5", 10)?.map((e) => e.id)).toEqual(["2000-6"]);
    // Bounded: about 4 MiB, the oldest entries go first.
    hub.appended("t", "2000-6", [7, 8, 9, 10, 11, 12].map(big));
    expect(hub.recentAfter("t", "2000-8", 10)).toBeNull();
    expect(hub.recentAfter("t", "2000-9", 10)?.map((e) => e.id)).toEqual(["2000-10", "2000-11", "2000-12"]);
    expect(hub.recentAfter("t", "2000-9", 2)?.map((e) => e.id)).toEqual(["2000-10", "2000-11"]);
    // An older, unconnected batch (a poll for a follower far behind) leaves the newer cache as it is.
    hub.appended("t", "2000-3", [big(4), big(5)]);
    expect(hub.recentAfter("t", "2000-9", 10)?.map((e) => e.id)).toEqual(["2000-10", "2000-11", "2000-12"]);
    expect(hub.recentAfter("t", "2000-3", 10)).toBeNull();
    // An unknown predecessor empties it.
    hub.appended("t", null, [big(13)]);
    expect(hub.recentAfter("t", "2000-12", 10)).toBeNull();
    close();
    expect(hub.wants("t")).toBe(false);
  });

  it("orders stream ids numerically", () => {
    const sign = (a: string, b: string) => Math.sign(compareIds(a, b));
    expect(sign("9-0", "10-0")).toBe(-1);
    expect(sign("10-2", "10-10")).toBe(-1);
    expect(sign("10-10", "10-10")).toBe(0);
    expect(sign("11-0", "10-99")).toBe(1);
  });
});
