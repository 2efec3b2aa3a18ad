// The long-poll waiter against a real Redis: announcements that race its own reads, and shutdown.
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { pino } from "pino";
import { TaskWaiter } from "../../src/api/task-waiter.js";

const REDIS_URL = process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379";
const channel = `berth-test-${randomUUID().slice(0, 8)}:finished`;
const logger = pino({ level: "silent" });
let publisher: Redis;

beforeAll(() => {
  publisher = new Redis(REDIS_URL);
});

afterAll(async () => {
  await publisher.quit();
});

/** A record read the test answers by hand. */
function gatedReads() {
  const pending: ((final: boolean) => void)[] = [];
  return {
    pending,
    isFinal: () => new Promise<boolean>((resolve) => pending.push(resolve)),
  };
}

const until = async (what: string, cond: () => boolean, timeoutMs = 5000) => {
  for (const deadline = Date.now() + timeoutMs; !cond(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe("TaskWaiter", () => {
  it("does not miss an end announced while its own read of the record is in flight", async () => {
    const waiter = new TaskWaiter(REDIS_URL, channel, logger);
    try {
      const reads = gatedReads();
      let answered = false;
      const polling = waiter.until("t1", 60_000, new AbortController().signal, reads.isFinal).then(() => (answered = true));
      await until("the first read", () => reads.pending.length === 1);
      // The task ends (and is announced) while that read, which saw it running, is still out.
      await publisher.publish(channel, "t1");
      await new Promise((r) => setTimeout(r, 100)); // the announcement reaches the waiter meanwhile
      reads.pending[0]?.(false);
      // Without a second read now, the answer would wait for the periodic re-read (every 2 s).
      await until("a second read, before the periodic one", () => reads.pending.length === 2, 1000);
      reads.pending[1]?.(true);
      await polling;
      expect(answered).toBe(true);
    } finally {
      await waiter.close();
    }
  });

  it("answers open polls at once when released, and takes no new ones", async () => {
    const waiter = new TaskWaiter(REDIS_URL, channel, logger);
    try {
      const reads = gatedReads();
      const started = Date.now();
      const polling = waiter.until("t2", 60_000, new AbortController().signal, reads.isFinal);
      await until("the first read", () => reads.pending.length === 1);
      reads.pending[0]?.(false);
      waiter.release();
      await polling;
      expect(Date.now() - started).toBeLessThan(30_000);
      await waiter.until("t3", 60_000, new AbortController().signal, reads.isFinal);
      expect(reads.pending).toHaveLength(1); // the poll after release returned without reading
    } finally {
      await waiter.close();
    }
  });

  it("stops when the client goes away", async () => {
    const waiter = new TaskWaiter(REDIS_URL, channel, logger);
    try {
      const reads = gatedReads();
      const gone = new AbortController();
      const polling = waiter.until("t4", 60_000, gone.signal, reads.isFinal);
      await until("the first read", () => reads.pending.length === 1);
      gone.abort();
      await polling;
      reads.pending[0]?.(false);
    } finally {
      await waiter.close();
    }
  });
});
