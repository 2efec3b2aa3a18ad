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

/** Who made a request: a tenant (by its key, or the one tenant of a server without keys), or an admin. */
export type Caller =
  | { readonly admin: false; readonly tenant: string; readonly keyId: string | null }
  | { readonly admin: true; readonly tenant: null; readonly keyId: string };

/** A key's id in audit entries and logs: the start of its SHA-256, never the key itself. */
export const keyIdOf = (key: string): string => digest(key).toString("hex").slice(0, 12);

export class Authenticator {
  /** Tenant keys (with their tenant) and admin keys (tenant null), as digests. */
  private readonly entries: { digest: Buffer; tenant: string | null; keyId: string }[];
  private readonly known = new WeakMap<FastifyRequest, Caller>();
  /** Requests whose authentication failed, with the id of the key they sent (null: none, or not checked). */
  private readonly refused = new WeakMap<FastifyRequest, { keyId: string | null }>();
  private readonly failures: FailureCounter;

  constructor(apiKeys: ReadonlyMap<string, string>, failuresPerMinute: number, adminKeys: readonly string[] = []) {
    this.entries = [
      ...[...apiKeys].map(([key, tenant]) => ({ digest: digest(key), tenant, keyId: keyIdOf(key) })),
      ...adminKeys.map((key) => ({ digest: digest(key), tenant: null, keyId: keyIdOf(key) })),
    ];
    this.failures = new FailureCounter(failuresPerMinute);
  }

  /** Who sent the request; 401 or 429 when its key is missing, wrong, or its address failed too often. */
  callerOf(request: FastifyRequest): Caller {
    const known = this.known.get(request);
    if (known !== undefined) return known;
    const caller = this.authenticate(request);
    this.known.set(request, caller);
    return caller;
  }

  /**
   * The tenant the request's key names; "default" when the server runs without keys. 401 or 429 as
   * {@link callerOf}; 403 for an admin key (admins act on tenants' tasks, they own none).
   */
  tenantOf(request: FastifyRequest): string {
    const caller = this.callerOf(request);
    if (caller.admin) {
      throw new BerthError("forbidden", "Admin keys act on tenants' tasks but own none: do this with a tenant's key.");
    }
    return caller.tenant;
  }

  /** The caller of a request already authenticated, without checking anything. */
  authenticated(request: FastifyRequest): Caller | undefined {
    return this.known.get(request);
  }

  /** Whether (and with which key id) the request's authentication failed. */
  failure(request: FastifyRequest): { keyId: string | null } | undefined {
    return this.refused.get(request);
  }

  private authenticate(request: FastifyRequest): Caller {
    if (this.entries.length === 0) return { admin: false, tenant: "default", keyId: null };
    const address = addressKey(request.ip);
    const wait = this.failures.blockedFor(address);
    if (wait > 0) {
      this.refused.set(request, { keyId: null });
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
      this.refused.set(request, { keyId: null });
      throw new BerthError("unauthorized", 'Send your API key as "Authorization: Bearer <key>".');
    }
    const given = digest(match[1] as string);
    let found: (typeof this.entries)[number] | null = null;
    // Compare against every key, so the time taken does not depend on which (if any) matched.
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, given)) found = e;
    }
    if (!found) {
      this.failures.record(address);
      this.refused.set(request, { keyId: given.toString("hex").slice(0, 12) });
      throw new BerthError("unauthorized", "That API key is not valid for this server.");
    }
    return found.tenant === null
      ? { admin: true, tenant: null, keyId: found.keyId }
      : { admin: false, tenant: found.tenant, keyId: found.keyId };
  }
}
