// retry (src/domain/retry.ts) under fake timers: attempts, waits and giving up; and the budgets run-task.ts gives
// its three retried steps.
import { afterEach, beforeEach, describe, expect, it, jest } from "@jest/globals";
import { retry, type RetryPolicy } from "../../src/domain/retry.js";
import { RETRY } from "../../src/runner/run-task.js";

beforeEach(() => {
  jest.useFakeTimers();
});
afterEach(() => {
  jest.useRealTimers();
});

/** An operation that fails its first `failures` calls, recording the (fake) time of each call. */
function flaky(failures: number) {
  const calls: number[] = [];
  const op = async (attempt: number) => {
    calls.push(Date.now());
    if (attempt <= failures) throw new Error(`failure ${attempt}`);
    return `done on attempt ${attempt}`;
  };
  return { op, calls };
}

/** Lets the retry run until it settles, moving the fake clock as far as its timers ask. */
async function settle<T>(p: Promise<T>): Promise<{ value?: T; error?: Error }> {
  const result = p.then(
    (value) => ({ value }),
    (error: Error) => ({ error }),
  );
  await jest.runAllTimersAsync();
  return result;
}

const policy: RetryPolicy = { attempts: 4, delayMs: (failed) => 100 * failed };

describe("retry", () => {
  it("resolves with the first success, without waiting", async () => {
    const { op, calls } = flaky(0);
    const start = Date.now();
    expect(await settle(retry(policy, op))).toEqual({ value: "done on attempt 1" });
    expect(calls).toEqual([start]);
  });

  it("waits the policy's delay after each failure before trying again", async () => {
    const { op, calls } = flaky(2);
    const start = Date.now();
    const p = retry(policy, op);
    await jest.advanceTimersByTimeAsync(99);
    expect(calls).toHaveLength(1); // not yet: the first wait is 100 ms
    await jest.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    expect(await settle(p)).toEqual({ value: "done on attempt 3" });
    expect(calls.map((t) => t - start)).toEqual([0, 100, 300]);
  });

  it("gives up after the last attempt with its error, telling of every failure, and does not wait after it", async () => {
    const { op, calls } = flaky(10);
    const failures: [string, number][] = [];
    const start = Date.now();
    const { error } = await settle(retry(policy, op, (err, attempt) => failures.push([(err as Error).message, attempt])));
    expect(error?.message).toBe("failure 4");
    expect(failures).toEqual([
      ["failure 1", 1],
      ["failure 2", 2],
      ["failure 3", 3],
      ["failure 4", 4],
    ]);
    expect(calls.map((t) => t - start)).toEqual([0, 100, 300, 600]);
    expect(Date.now() - start).toBe(600);
  });

  it("waits firstDelayMs before the first attempt", async () => {
    const { op, calls } = flaky(0);
    const start = Date.now();
    expect(await settle(retry({ ...policy, firstDelayMs: 250 }, op))).toEqual({ value: "done on attempt 1" });
    expect(calls.map((t) => t - start)).toEqual([250]);
  });
});

describe("run-task's budgets", () => {
  /** When each attempt starts (ms after the first call) if every attempt fails. */
  async function schedule(p: RetryPolicy): Promise<number[]> {
    const { op, calls } = flaky(Number.POSITIVE_INFINITY);
    const start = Date.now();
    await settle(retry(p, op));
    return calls.map((t) => t - start);
  }

  it("recording the outcome: 30 attempts, 0.5 s more between each up to 5 s, about two minutes", async () => {
    const at = await schedule(RETRY.redisWrite);
    expect(at).toHaveLength(30);
    expect(at.slice(0, 4)).toEqual([0, 500, 1500, 3000]);
    expect((at[29] as number) - (at[28] as number)).toBe(5000);
    expect(at[29]).toBe(122_500);
  });

  it("removing the container: 8 attempts over 14 s", async () => {
    expect(await schedule(RETRY.removeContainer)).toEqual([0, 500, 1500, 3000, 5000, 7500, 10_500, 14_000]);
  });

  it("then in the background: every 5 s for ten minutes", async () => {
    const at = await schedule(RETRY.removeLater);
    expect(at).toHaveLength(120);
    expect(at[0]).toBe(5000);
    expect(at[119]).toBe(600_000);
  });
});
