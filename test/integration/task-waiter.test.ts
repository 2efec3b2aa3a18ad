// The long-poll waiter against a real Redis: announcements that race its own reads, release, and clients leaving.
import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { pino } from "pino";
import { TaskWaiter } from "../../src/api/task-waiter.js";
import { waitFor } from "../helpers/wait-for.js";

const REDIS_URL = process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379";
const channel = `berth-test-${randomUUID().slice(0, 8)}:finished`;
const logger = pino({ level: "silent" });
/** Beyond any wait here: a read after the first one can only come from an announcement. */
const NO_RECHECK = { recheckMs: 600_000 };
let publisher: Redis;

beforeAll(() => {
  publisher = new Redis(REDIS_URL);
});

afterAll(async () => {
  await publisher.quit();
});

/** Reads of a task's record that the test answers by hand, in order. */
function gatedReads() {
  const pending: ((final: boolean) => void)[] = [];
  return {
    pending,
    isFinal: () => new Promise<boolean>((resolve) => pending.push(resolve)),
  };
}

/** Reads of a task's record that answer "not final" at once, counted. */
function countedReads() {
  const reads = {
    count: 0,
    isFinal: async (): Promise<boolean> => {
      reads.count++;
      return false;
    },
  };
  return reads;
}

const until = <T>(what: string, probe: () => T, done: (v: T) => boolean) =>
  waitFor(what, async () => probe(), done, { timeoutMs: 30_000, intervalMs: 5 });

/**
 * Announcements reach the waiter in the order they were published (one subscriber connection): once the probe
 * task's announcement has made the probe read again, every announcement published before it has been handled.
 */
async function announceAndWait(waiter: TaskWaiter, taskIds: string[], probe: ReturnType<typeof countedReads>, probeId: string) {
  const before = probe.count;
  for (const id of taskIds) await publisher.publish(channel, id);
  await publisher.publish(channel, probeId);
  await until(
    `the announcement of ${probeId} to reach the waiter`,
    () => probe.count,
    (n) => n > before,
  );
  expect(waiter.openPolls(probeId)).toBe(1);
}

describe("TaskWaiter", () => {
  it("does not miss an end announced while its own read of the record is in flight", async () => {
    const waiter = new TaskWaiter(REDIS_URL, channel, logger, NO_RECHECK);
    try {
      const reads = gatedReads();
      let answered = false;
      const polling = waiter.until("t1", 600_000, new AbortController().signal, reads.isFinal).then(() => (answered = true));
      await until(
        "the first read",
        () => reads.pending.length,
        (n) => n === 1,
      );
      const probe = countedReads();
      void waiter.until("p1", 600_000, new AbortController().signal, probe.isFinal);
      await until(
        "the probe's first read",
        () => probe.count,
        (n) => n === 1,
      );
      // The task ends (and is announced) while that read, which saw it running, is still out.
      await announceAndWait(waiter, ["t1"], probe, "p1");
      reads.pending[0]?.(false);
      // Without a second read now, the answer would wait for the periodic re-read (out of reach here).
      await until(
        "a second read, after the first one came back",
        () => reads.pending.length,
        (n) => n === 2,
      );
      reads.pending[1]?.(true);
      await polling;
      expect(answered).toBe(true);
      expect(waiter.openPolls("t1")).toBe(0);
    } finally {
      await waiter.close();
    }
  });

  it("answers open polls at once when released, and takes no new ones", async () => {
    const waiter = new TaskWaiter(REDIS_URL, channel, logger, NO_RECHECK);
    try {
      const reads = gatedReads();
      // Nothing but the release can answer this poll: no end, no re-read, and a wait longer than the test's.
      const polling = waiter.until("t2", 600_000, new AbortController().signal, reads.isFinal);
      await until(
        "the first read",
        () => reads.pending.length,
        (n) => n === 1,
      );
      reads.pending[0]?.(false);
      waiter.release();
      await polling;
      expect(waiter.openPolls("t2")).toBe(0);
      await waiter.until("t3", 600_000, new AbortController().signal, reads.isFinal);
      expect(reads.pending).toHaveLength(1); // the poll after release returned without reading
    } finally {
      await waiter.close();
    }
  });

  it("stops when the client goes away: the poll is removed and its task is read no more", async () => {
    /** Opens a poll of `taskId`, lets its first read go out, then the client leaves; returns its reads. */
    const leave = async (waiter: TaskWaiter, taskId: string) => {
      const reads = gatedReads();
      const gone = new AbortController();
      const polling = waiter.until(taskId, 600_000, gone.signal, reads.isFinal);
      await until(
        "the first read",
        () => reads.pending.length,
        (n) => n === 1,
      );
      expect(waiter.openPolls(taskId)).toBe(1);
      gone.abort();
      await polling;
      expect(waiter.openPolls(taskId)).toBe(0);
      reads.pending[0]?.(false); // the read that was out when the client left comes back
      return reads;
    };

    // Its task's end is announced afterwards: nothing reads it.
    const quiet = new TaskWaiter(REDIS_URL, channel, logger, NO_RECHECK);
    try {
      const reads = await leave(quiet, "t4");
      const probe = countedReads();
      void quiet.until("p4", 600_000, new AbortController().signal, probe.isFinal);
      await until(
        "the probe's first read",
        () => probe.count,
        (n) => n === 1,
      );
      await announceAndWait(quiet, ["t4"], probe, "p4");
      expect(reads.pending).toHaveLength(1);
    } finally {
      await quiet.close();
    }

    // Its periodic re-read stops too. A probe poll opened after the client left, with the same period: by the time
    // it has re-read a few times, a leftover poll (whose timer started earlier) would have re-read as often.
    const eager = new TaskWaiter(REDIS_URL, channel, logger, { recheckMs: 20 });
    try {
      const reads = await leave(eager, "t5");
      const probe = countedReads();
      void eager.until("p5", 600_000, new AbortController().signal, probe.isFinal);
      await until(
        "the probe to re-read a few times",
        () => probe.count,
        (n) => n >= 4,
      );
      expect(reads.pending).toHaveLength(1);
      expect(eager.openPolls("t5")).toBe(0);
    } finally {
      await eager.close();
    }
  });
});
