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
  auto = false;

  readAfter(_taskId: string, after: string, count: number): Promise<StoredEntry[]> {
    return new Promise((resolve) => {
      const release = () => {
        this.pending.splice(this.pending.indexOf(call), 1);
        resolve(this.entries.filter((e) => compareIds(e.id, after) > 0).slice(0, count));
      };
      const call = { after, release };
      this.pending.push(call);
      this.maxInFlight = Math.max(this.maxInFlight, this.pending.length);
      if (this.auto) setImmediate(release);
    });
  }
}

class Recorder implements Follower {
  readonly got: string[] = [];
  constructor(public lastId: string, private readonly accept = () => true) {}
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
      await waitFor("first read", async () => logs.pending.length, (n) => n === 1);
      logs.pending[0]?.release();
      await waitFor("A to get 1 and 2", async () => a.got.length, (n) => n === 2);

      // The next read (strictly after 1000-2) is in flight when B joins, having read only up to 1000-1 itself.
      await waitFor("second read", async () => logs.pending.length, (n) => n === 1);
      expect(logs.pending[0]?.after).toBe("1000-2");
      logs.entries.push(entry(3));
      stops.push(hub.follow("t", b));
      logs.pending[0]?.release();
      logs.auto = true;
      for (const p of [...logs.pending]) p.release();

      await waitFor("B to catch up", async () => b.got.length, (n) => n >= 2, { timeoutMs: 5000 });
      await new Promise((r) => setTimeout(r, 50)); // a few more polls: nothing more may arrive
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
      await waitFor("both to get entry 1", async () => slow.got.length + fast.got.length, (n) => n === 2);
      logs.entries.push(entry(2));
      await waitFor("fast to get entry 2", async () => fast.got.length, (n) => n === 2);
      expect(slow.got).toEqual(["1000-1"]);
    } finally {
      for (const stop of stops) stop();
    }
  });

  it("orders stream ids numerically", () => {
    const sign = (a: string, b: string) => Math.sign(compareIds(a, b));
    expect(sign("9-0", "10-0")).toBe(-1);
    expect(sign("10-2", "10-10")).toBe(-1);
    expect(sign("10-10", "10-10")).toBe(0);
    expect(sign("11-0", "10-99")).toBe(1);
  });
});
