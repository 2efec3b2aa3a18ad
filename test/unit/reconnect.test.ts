// Reconnects (src/client/reconnect.ts): when a follower of the client tries again after a dropped connection, how
// long it waits, and how it gives up.
import { BerthApiError, UNREACHABLE } from "../../src/client/errors.js";
import { Reconnects, isRetriable } from "../../src/client/reconnect.js";

const cut = new Error("socket hang up");

function follower(opts: { maxRetries?: number; retryDelayMs?: number; maxRetryDelayMs?: number } = {}) {
  const attempts: number[] = [];
  const controller = new AbortController();
  const reconnects = new Reconnects("log stream", "t1", {
    retryDelayMs: 1,
    ...opts,
    onReconnect: (attempt) => attempts.push(attempt),
    signal: controller.signal,
  });
  return { reconnects, attempts, controller };
}

describe("reconnecting a follower", () => {
  it("tries again up to maxRetries times in a row, then fails naming the stream, the task and the last problem", async () => {
    const { reconnects, attempts } = follower({ maxRetries: 3 });
    for (let i = 0; i < 3; i++) expect(await reconnects.next(cut, Date.now())).toBe(true);
    const gaveUp = await reconnects.next(cut, Date.now()).catch((err: unknown) => err);
    expect(attempts).toEqual([1, 2, 3]);
    expect(gaveUp).toBeInstanceOf(BerthApiError);
    expect(gaveUp).toMatchObject({ status: 0, code: UNREACHABLE, cause: cut });
    expect((gaveUp as Error).message).toBe('Lost the log stream of task "t1" and could not resume it after 3 retries: socket hang up.');
  });

  it("counts failures in a row only: anything received starts the count again", async () => {
    const { reconnects, attempts } = follower({ maxRetries: 2 });
    await reconnects.next(cut, Date.now());
    await reconnects.next(cut, Date.now());
    reconnects.progressed();
    expect(await reconnects.next(cut, Date.now())).toBe(true);
    expect(attempts).toEqual([1, 2, 1]);
  });

  it("counts a connection that stayed up 15 s as healthy, even with nothing received", async () => {
    const { reconnects, attempts } = follower({ maxRetries: 1 });
    await reconnects.next(cut, Date.now());
    expect(await reconnects.next(cut, Date.now() - 15_000)).toBe(true);
    expect(attempts).toEqual([1, 1]);
  });

  it("hands on the server's own refusal once retries are spent", async () => {
    const { reconnects } = follower({ maxRetries: 0 });
    const busy = new BerthApiError(503, "dependency_unavailable", "Redis is away");
    await expect(reconnects.next(busy, Date.now())).rejects.toBe(busy);
  });

  it("doubles the wait per failure in a row, up to maxRetryDelayMs; the server's retry replaces the first", async () => {
    const delays: number[] = [];
    const opts = { retryDelayMs: 1, maxRetryDelayMs: 5, onReconnect: (_: number, __: unknown, ms: number) => delays.push(ms) };
    const reconnects = new Reconnects("output stream", "t1", opts);
    for (let i = 0; i < 4; i++) await reconnects.next(cut, Date.now());
    reconnects.progressed();
    await reconnects.next(cut, Date.now(), 3);
    await reconnects.next(cut, Date.now(), 3);
    expect(delays).toEqual([1, 2, 4, 5, 3, 5]);
  });

  it("ends quietly when the follower is aborted, also while it waits", async () => {
    const { reconnects, controller } = follower({ retryDelayMs: 60_000 });
    const waiting = reconnects.next(cut, Date.now());
    controller.abort();
    expect(await waiting).toBe(false);
    expect(await reconnects.next(cut, Date.now())).toBe(false);
  });

  it("ends quietly when the consumer aborts a connection being opened, rethrows a refusal, retries the rest", () => {
    const { reconnects, controller } = follower();
    const refused = new BerthApiError(404, "not_found", "no such task");
    expect(() => reconnects.endsOn(refused)).toThrow(refused);
    expect(reconnects.endsOn(cut)).toBe(false);
    controller.abort();
    const abortError = Object.assign(new Error("This operation was aborted"), { name: "AbortError" }); // as fetch rejects
    expect(reconnects.endsOn(abortError)).toBe(true);
    expect(reconnects.signal.aborted).toBe(true);
  });

  it("lets go of its connections when closed, and of the consumer's signal", () => {
    const consumer = new AbortController();
    const reconnects = new Reconnects("log stream", "t1", { signal: consumer.signal });
    reconnects.close();
    expect(reconnects.signal.aborted).toBe(true);
    expect(new Reconnects("log stream", "t1", { signal: AbortSignal.abort() }).signal.aborted).toBe(true);
  });

  it("tries again after a cut connection, a server error or 429, never after another 4xx", () => {
    expect(isRetriable(cut)).toBe(true);
    expect(isRetriable(new BerthApiError(0, UNREACHABLE, "no answer"))).toBe(true);
    expect(isRetriable(new BerthApiError(429, "rate_limited", "slow down"))).toBe(true);
    expect(isRetriable(new BerthApiError(503, "dependency_unavailable", "away"))).toBe(true);
    expect(isRetriable(new BerthApiError(404, "not_found", "no such task"))).toBe(false);
    expect(isRetriable(new BerthApiError(401, "unauthorized", "who are you"))).toBe(false);
  });
});
