// Caps on the reads of whole archives that diffs and change-only archives make (archive/change-diff.ts,
// archive/change-archive.ts), at once per API process, in all and per tenant: each one decompresses a task's
// archive from start to end, so many at once would take the cores from everything else. Past them: 429.
import { BerthError } from "../errors.js";

const RETRY_AFTER_SECONDS = 5;
/** Reads at once in all, and of one tenant. */
export const CHANGE_READS = { max: 4, perTenant: 2 } as const;

export class ChangeReads {
  private total = 0;
  private readonly perTenant = new Map<string, number>();

  constructor(
    private readonly max: number = CHANGE_READS.max,
    private readonly maxPerTenant: number = CHANGE_READS.perTenant,
  ) {}

  /** Runs `work` in a slot of `tenant`, or throws 429 when none is free. */
  async run<T>(tenant: string, work: () => Promise<T>): Promise<T> {
    const mine = this.perTenant.get(tenant) ?? 0;
    if (mine >= this.maxPerTenant || this.total >= this.max) {
      const who = mine >= this.maxPerTenant ? `You have ${mine}` : `The server has ${this.total}`;
      throw new BerthError(
        "rate_limited",
        `${who} diffs or change-only archives being made, the most allowed at once (${mine >= this.maxPerTenant ? this.maxPerTenant : this.max}); retry in a few seconds.`,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    this.total++;
    this.perTenant.set(tenant, mine + 1);
    try {
      return await work();
    } finally {
      this.total--;
      const left = (this.perTenant.get(tenant) ?? 1) - 1;
      if (left === 0) this.perTenant.delete(tenant);
      else this.perTenant.set(tenant, left);
    }
  }

  /** Reads running, in all or of one tenant. */
  running(tenant?: string): number {
    return tenant === undefined ? this.total : (this.perTenant.get(tenant) ?? 0);
  }
}
