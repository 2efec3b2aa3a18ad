// ChangeReads (src/api/change-reads.ts): diffs and change-only archives being made at once, in all and per tenant.
import { ChangeReads } from "../../src/api/change-reads.js";
import { BerthError } from "../../src/errors.js";

describe("ChangeReads", () => {
  it("refuses with 429 past the tenant's share and past the total, and frees a slot when the work ends", async () => {
    const reads = new ChangeReads(3, 2);
    const gates: (() => void)[] = [];
    const held = () => new Promise<void>((resolve) => gates.push(resolve));
    const a1 = reads.run("acme", held);
    const a2 = reads.run("acme", held);
    const refused = await reads.run("acme", held).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BerthError);
    expect(refused).toMatchObject({ code: "rate_limited", details: { retryAfterSeconds: 5 } });
    const g1 = reads.run("globex", held);
    await expect(reads.run("initech", held)).rejects.toMatchObject({ code: "rate_limited" });
    expect(reads.running()).toBe(3);
    expect(reads.running("acme")).toBe(2);
    for (const open of gates) open();
    await Promise.all([a1, a2, g1]);
    expect(reads.running()).toBe(0);
    await expect(reads.run("acme", async () => 42)).resolves.toBe(42);
  });

  it("frees the slot when the work fails", async () => {
    const reads = new ChangeReads(1, 1);
    await expect(reads.run("acme", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(reads.running()).toBe(0);
  });
});
