// Bearer keys → tenants. Keys are compared as SHA-256 digests in constant time and never logged.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { BerthError } from "../errors.js";

const digest = (s: string) => createHash("sha256").update(s).digest();

export class Authenticator {
  private readonly entries: { digest: Buffer; tenant: string }[];

  constructor(apiKeys: ReadonlyMap<string, string>) {
    this.entries = [...apiKeys].map(([key, tenant]) => ({ digest: digest(key), tenant }));
  }

  /** The tenant the request's key names; "default" when the server runs without keys. */
  tenantOf(request: FastifyRequest): string {
    if (this.entries.length === 0) return "default";
    const header = request.headers.authorization;
    const match = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new BerthError("unauthorized", 'Send your API key as "Authorization: Bearer <key>".');
    const given = digest(match[1] as string);
    let tenant: string | null = null;
    // Compare against every key, so the time taken does not depend on which (if any) matched.
    for (const e of this.entries) {
      if (timingSafeEqual(e.digest, given)) tenant = e.tenant;
    }
    if (!tenant) throw new BerthError("unauthorized", "That API key is not valid for this server.");
    return tenant;
  }
}
