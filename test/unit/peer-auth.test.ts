// Signing of the requests between berth's hosts (src/api/peer-auth.ts).
import { checkSignature, SIGNATURE_MAX_SKEW_SECONDS, signRequest } from "../../src/api/peer-auth.js";

const SECRET = "s".repeat(40);
const PATH = "/internal/v1/workspaces/task-1700000000000-abcdefgh/files/a.txt";
const NOW = 1_800_000_000_000;

describe("peer request signatures", () => {
  it("accepts a request signed with the same secret, method and path within the allowed skew", () => {
    const sig = signRequest(SECRET, "GET", PATH, NOW);
    expect(sig).toMatch(/^t=1800000000,v1=[0-9a-f]{64}$/);
    expect(checkSignature(SECRET, "GET", PATH, sig, NOW)).toBeNull();
    expect(checkSignature(SECRET, "get", PATH, sig, NOW + SIGNATURE_MAX_SKEW_SECONDS * 1000)).toBeNull();
  });

  it("refuses an unsigned, malformed, expired or altered request, or another secret's", () => {
    const sig = signRequest(SECRET, "GET", PATH, NOW);
    expect(checkSignature(SECRET, "GET", PATH, undefined, NOW)).toMatch(/not signed/);
    expect(checkSignature(SECRET, "GET", PATH, "t=1,v1=zz", NOW)).toMatch(/malformed/);
    expect(checkSignature(SECRET, "GET", PATH, sig, NOW + (SIGNATURE_MAX_SKEW_SECONDS + 2) * 1000)).toMatch(/expired/);
    expect(checkSignature(SECRET, "GET", PATH, sig, NOW - (SIGNATURE_MAX_SKEW_SECONDS + 2) * 1000)).toMatch(/expired/);
    expect(checkSignature(SECRET, "GET", `${PATH}x`, sig, NOW)).toMatch(/does not match/);
    expect(checkSignature(SECRET, "DELETE", PATH, sig, NOW)).toMatch(/does not match/);
    expect(checkSignature("t".repeat(40), "GET", PATH, sig, NOW)).toMatch(/does not match/);
    // The time is part of what is signed: moving it forward breaks the signature.
    const moved = sig.replace(/^t=(\d+)/, (_, t: string) => `t=${Number(t) + 10}`);
    expect(checkSignature(SECRET, "GET", PATH, moved, NOW)).toMatch(/does not match/);
  });
});
