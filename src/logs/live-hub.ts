// Fans a task's new log entries out to every live follower in this process with one store read per poll,
// however many followers there are. A follower that falls behind (slow reader) is dropped from the fan-out
// and catches up from the store on its own, so the hub's memory never grows with a slow client.
//
// Ordering guarantee: a follower is only ever handed entries that directly continue its own position (no gap):
// a poll reads "strictly after P"; followers whose position is before P (they joined while that read was in
// flight, with an older position) are skipped by that poll and served by the next one, which reads from the
// lowest position any follower needs.
import type { LogStore, StoredEntry } from "./log-store.js";

export interface Follower {
  /** Called with entries strictly after the follower's last id, in order. Returns false to detach. */
  deliver(entries: readonly StoredEntry[]): boolean;
  /** The follower's position; the hub never sends entries at or before it. */
  readonly lastId: string;
}

interface Channel {
  readonly followers: Set<Follower>;
  /** Where the next poll reads from: never after the position of any follower. */
  lastId: string;
  timer: NodeJS.Timeout | undefined;
  /** A read is in flight; `again` asks for another poll right after it. */
  polling: boolean;
  again: boolean;
}

/** Entries per store read. Entries hold up to 64 Ki characters, so this bounds one poll's memory (~6 MB). */
const BATCH = 100;

export class LiveHub {
  private readonly channels = new Map<string, Channel>();

  constructor(
    private readonly logs: LogStore,
    private readonly pollMs = 50,
  ) {}

  /** Adds a follower that has already read up to `follower.lastId`. Returns the function that removes it. */
  follow(taskId: string, follower: Follower): () => void {
    let ch = this.channels.get(taskId);
    if (!ch) {
      ch = { followers: new Set(), lastId: follower.lastId, timer: undefined, polling: false, again: false };
      this.channels.set(taskId, ch);
    }
    // The channel reads from the oldest position any follower needs.
    if (compareIds(follower.lastId, ch.lastId) < 0) ch.lastId = follower.lastId;
    ch.followers.add(follower);
    this.schedule(taskId, ch, 0);
    return () => this.unfollow(taskId, follower);
  }

  private unfollow(taskId: string, follower: Follower): void {
    const ch = this.channels.get(taskId);
    if (!ch) return;
    ch.followers.delete(follower);
    if (ch.followers.size === 0) {
      clearTimeout(ch.timer);
      ch.timer = undefined;
      this.channels.delete(taskId);
    }
  }

  /** At most one read per channel at a time: two concurrent reads could hand a follower entries out of order. */
  private schedule(taskId: string, ch: Channel, ms: number): void {
    if (ch.polling) {
      if (ms === 0) ch.again = true;
      return;
    }
    if (ch.timer) return;
    ch.timer = setTimeout(() => {
      ch.timer = undefined;
      void this.poll(taskId, ch);
    }, ms);
  }

  private async poll(taskId: string, ch: Channel): Promise<void> {
    const from = ch.lastId;
    let entries: StoredEntry[] = [];
    ch.polling = true;
    ch.again = false;
    try {
      entries = await this.logs.readAfter(taskId, from, BATCH);
    } catch {
      // Redis hiccup: followers keep their position; try again shortly.
    } finally {
      ch.polling = false;
    }
    if (entries.length > 0) {
      // A follower that joined during the read with an older position lowered ch.lastId: keep that, so the
      // next poll starts where it needs; everyone else filters out what they already have.
      if (compareIds(ch.lastId, from) >= 0) ch.lastId = (entries[entries.length - 1] as StoredEntry).id;
      for (const f of [...ch.followers]) {
        if (compareIds(f.lastId, from) < 0) continue; // would leave a gap; served by the next poll
        const fresh = entries.filter((e) => compareIds(e.id, f.lastId) > 0);
        if (fresh.length === 0) continue;
        let keep = false;
        try {
          keep = f.deliver(fresh);
        } catch {
          keep = false;
        }
        if (!keep) this.unfollow(taskId, f);
      }
    }
    if (this.channels.get(taskId) === ch) this.schedule(taskId, ch, ch.again || entries.length >= BATCH ? 0 : this.pollMs);
  }
}

/** Orders Redis stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const ma = BigInt(am);
  const mb = BigInt(bm);
  if (ma !== mb) return ma < mb ? -1 : 1;
  const sa = BigInt(as);
  const sb = BigInt(bs);
  return sa === sb ? 0 : sa < sb ? -1 : 1;
}
