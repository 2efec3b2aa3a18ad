import type { Redis } from "ioredis";
import { pino } from "pino";
import { ACK_TIMEOUT_MS, DEGRADED_PROBE_MS, GRACE_MS, ReplicaAck } from "../../src/store/replica-ack.js";

/** A connection whose WAIT answers from a script, and a clock that a WAIT nobody acknowledged moves by its timeout. */
function setup(answers: (number | Error)[]) {
  let now = 1_000_000;
  const calls: string[][] = [];
  const redis = {
    async call(...args: string[]) {
      calls.push(args);
      const next = answers.shift();
      if (next === undefined) throw new Error("no more answers scripted");
      if (next instanceof Error) throw next;
      if (next === 0) now += ACK_TIMEOUT_MS;
      return next;
    },
  };
  const lines: string[] = [];
  const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l).msg) });
  const ack = ReplicaAck.attach(redis as unknown as Redis, logger, () => now);
  return { ack, calls, lines, advance: (ms: number) => (now += ms), redis };
}

describe("ReplicaAck", () => {
  it("returns once a replica acknowledges, asking with WAIT 1 <timeout>", async () => {
    const { ack, calls } = setup([1]);
    await ack.confirm();
    expect(calls).toEqual([["WAIT", "1", String(ACK_TIMEOUT_MS)]]);
  });

  it("asks again while no replica answers, and a late acknowledgement still confirms", async () => {
    const { ack, calls, lines } = setup([0, 0, 0, 1]);
    await ack.confirm();
    expect(calls).toHaveLength(4);
    expect(lines).toEqual([]);
  });

  it("fails with the connection: the change is then in doubt", async () => {
    const { ack } = setup([0, new Error("Connection is closed.")]);
    await expect(ack.confirm()).rejects.toThrow("Connection is closed.");
  });

  it("goes on unconfirmed after the grace period, says so once, and probes now and then until a replica is back", async () => {
    const waits = GRACE_MS / ACK_TIMEOUT_MS;
    const { ack, calls, lines, advance } = setup([...Array<number>(waits).fill(0), 0, 1]);
    await ack.confirm();
    expect(calls).toHaveLength(waits);
    expect(lines).toEqual([expect.stringMatching(/^no replica has confirmed a write for a while/)]);
    // Degraded: no WAIT until the next probe is due.
    await ack.confirm();
    expect(calls).toHaveLength(waits);
    advance(DEGRADED_PROBE_MS);
    await ack.confirm(); // the probe: still nobody
    expect(calls).toHaveLength(waits + 1);
    await ack.confirm();
    expect(calls).toHaveLength(waits + 1);
    advance(DEGRADED_PROBE_MS);
    await ack.confirm(); // a replica answers again
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/^a replica confirms writes again/);
  });

  it("shares WAITs among changes confirmed at once: one on its way, one more behind it", async () => {
    const { ack, calls } = setup([1, 1, 1]);
    await Promise.all([ack.confirm(), ack.confirm(), ack.confirm(), ack.confirm()]);
    expect(calls).toHaveLength(2);
    await ack.confirm();
    expect(calls).toHaveLength(3);
  });

  it("is found by the connection it was attached to", () => {
    const { ack, redis } = setup([]);
    expect(ReplicaAck.of(redis)).toBe(ack);
    expect(ReplicaAck.of({})).toBeUndefined();
  });
});
