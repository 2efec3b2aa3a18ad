// Caps on log responses (SSE and plain text) open at once, in all and per tenant, so clients that never read
// cannot pile up without bound: the next one answers 429 with Retry-After.
import { BerthError } from "../errors.js";

const RETRY_AFTER_SECONDS = 5;

export class LogStreamSlots {
  private total = 0;
  private readonly perTenant = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly maxPerTenant: number,
  ) {}

  /** Takes a slot for `tenant`, or throws 429. Returns the function that gives it back (idempotent). */
  acquire(tenant: string): () => void {
    const mine = this.perTenant.get(tenant) ?? 0;
    if (mine >= this.maxPerTenant) {
      throw new BerthError(
        "too_many_streams",
        `You have ${mine} log streams open, the most BERTH_TENANT_MAX_LOG_STREAMS allows (${this.maxPerTenant}); close one, or retry later.`,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    if (this.total >= this.max) {
      throw new BerthError(
        "too_many_streams",
        `The server has ${this.total} log streams open, the most BERTH_MAX_LOG_STREAMS allows (${this.max}); retry later.`,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    this.total++;
    this.perTenant.set(tenant, mine + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.total--;
      const left = (this.perTenant.get(tenant) ?? 1) - 1;
      if (left === 0) this.perTenant.delete(tenant);
      else this.perTenant.set(tenant, left);
    };
  }

  /** Open streams, in all and of one tenant. */
  open(tenant?: string): number {
    return tenant === undefined ? this.total : (this.perTenant.get(tenant) ?? 0);
  }
}
