// Bearer keys → tenants. Keys are compared as SHA-256 digests in constant time and never logged. Failed
// authentications are counted per client address: past the budget, that address's keyed requests answer 429
// without their key being checked, so keys cannot be guessed at speed.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { BerthError } from "../errors.js";
import { addressKey } from "./client-address.js";

const digest = (s: string) => createHash("sha256").update(s).digest();

const WINDOW_MS = 60_000;
/** Addresses remembered at once; the oldest are forgotten first (an address flood cannot grow the map). */
const MAX_ADDRESSES = 10_000;

/** Failures per client address in fixed one-minute windows. */
export class FailureCounter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>();

  constructor(
    readonly maxPerWindow: number,
    private readonly maxAddresses = MAX_ADDRESSES,
  ) {}

  /** Seconds until `address` may try again, or 0 when it may now. */
  blockedFor(address: string, now = Date.now()): number {
    if (this.maxPerWindow === 0) return 0;
    const w = this.windows.get(address);
    if (!w || now >= w.resetAt || w.count < this.maxPerWindow) return 0;
    return Math.max(1, Math.ceil((w.resetAt - now) / 1000));
  }

  record(address: string, now = Date.now()): void {
    if (this.maxPerWindow === 0) return;
    const w = this.windows.get(address);
    if (w && now < w.resetAt) {
      w.count++;
      return;
    }
    this.windows.delete(address);
    this.windows.set(address, { count: 1, resetAt: now + WINDOW_MS });
    if (this.windows.size > this.maxAddresses) this.windows.delete(this.windows.keys().next().value as string);
  }
}

export class Authenticator {
  private readonly entries: { digest: Buffer; tenant: string }[];
  private readonly known = new WeakMap<FastifyRequest, string>();
  private readonly failures: FailureCounter;

  constructor(apiKeys: ReadonlyMap<string, string>, failuresPerMinute: number) {
    this.entries = [...apiKeys].map(([key, tenant]) => ({ digest: digest(key), tenant }));
    this.failures = new FailureCounter(failuresPerMinute);
  }

  /** The tenant the request's key names; "default" when the server runs without keys. 401 or 429 otherwise. */
  tenantOf(request: FastifyRequest): string {
    const known = this.known.get(request);
    if (known !== undefined) return known;
    const tenant = this.authenticate(request);
    this.known.set(request, tenant);
    return tenant;
  }

  /** The tenant of a request already authenticated, without checking anything. */
  authenticated(request: FastifyRequest): string | undefined {
    return this.known.get(request);
  }

  private authenticate(request: FastifyRequest): string {
    if (this.entries.length === 0) return "default";
    const address = addressKey(request.ip);
    const wait = this.failures.blockedFor(address);
    if (wait > 0) {
      throw new BerthError(
        "rate_limited",
        `Too many failed authentications from your address (at most ${this.failures.maxPerWindow} a minute, BERTH_AUTH_FAILURES_PER_MINUTE); retry in ${wait} s with a valid key.`,
        { retryAfterSeconds: wait },
      );
    }
    const header = request.headers.authorization;
    const match = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      this.failures.record(address);
      throw new BerthError("unauthorized", 'Send your API key as "Authorization: Bearer <key>".');
    }
    const given = digest(match[1] as string);
    let tenant: string | null = null;
    // Compare against every key, so the time taken does not depend on which (if any) matched.
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, given)) tenant = e.tenant;
    }
    if (!tenant) {
      this.failures.record(address);
      throw new BerthError("unauthorized", "That API key is not valid for this server.");
    }
    return tenant;
  }
}
