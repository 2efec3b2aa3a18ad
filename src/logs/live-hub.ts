// Fans a task's new log entries out to every live follower in this process, however many followers there are.
// Two sources feed it:
// - entries a worker in this process has just appended (LogStore hands them over with the id that precedes
//   them): delivered at once, without reading Redis;
// - otherwise one store read per poll (a task running in another process, a follower that joined behind).
// A follower that falls behind (slow reader) is dropped from the fan-out and catches up on its own, so the hub's
// memory never grows with a slow client: from the hub's bounded cache of the task's latest entries (shared by all
// followers of the task) when that still covers its position, else from the store.
//
// Ordering guarantee: a follower is only ever handed entries that directly continue its own position (no gap).
// Appended entries go only to followers whose position is the entry before them (or inside them). A poll reads
// "strictly after P"; followers whose position is before P (they joined while that read was in flight, with an
// older position) are skipped by that poll and served by the next one, which reads from the lowest position any
// follower needs.
import type { LiveListener, LogStore, StoredEntry } from "./log-store.js";

export interface Follower {
  /** Called with entries strictly after the follower's last id, in order. Returns false to detach. */
  deliver(entries: readonly StoredEntry[]): boolean;
  /** The follower's position; the hub never sends entries at or before it. */
  readonly lastId: string;
}

interface Channel {
  readonly followers: Set<Follower>;
  /** Open handles (followers' streams, attached to the fan-out or catching up): the channel lives while any do. */
  holds: number;
  /** The latest entries, contiguous: `recent[0]` directly follows `recentPrev`. At most RECENT_BYTES of text. */
  recent: StoredEntry[];
  recentPrev: string | null;
  recentBytes: number;
  /** Where the next poll reads from: never after the position of any follower. */
  lastId: string;
  timer: NodeJS.Timeout | undefined;
  /** A read is in flight; `again` asks for another poll right after it. */
  polling: boolean;
  again: boolean;
}

/** Entries per store read. Entries hold up to 64 KiB, so this bounds one poll's memory (~2 MB). */
const BATCH = 32;
/** Text kept per followed task for followers catching up (whatever their number)... */
const RECENT_BYTES = 4 * 1024 * 1024;
/** ...and for all followed tasks together (each gets its share, but at least MIN_RECENT_BYTES). */
const HUB_RECENT_BYTES = 32 * 1024 * 1024;
const MIN_RECENT_BYTES = 256 * 1024;

const sizeOf = (e: StoredEntry) => (e.stream === "end" ? 64 : e.text.length + 64);

export class LiveHub implements LiveListener {
  private readonly channels = new Map<string, Channel>();

  constructor(
    private readonly logs: Pick<LogStore, "readAfter">,
    private readonly pollMs = 50,
  ) {}

  wants(taskId: string): boolean {
    return this.channels.has(taskId);
  }

  appended(taskId: string, prevId: string | null, entries: readonly StoredEntry[]): void {
    const ch = this.channels.get(taskId);
    const last = entries[entries.length - 1];
    if (!ch || !last) return;
    this.remember(ch, prevId, entries);
    if (prevId === null) return; // unknown predecessor: the poll serves everyone
    for (const f of [...ch.followers]) {
      const at = f.lastId;
      let fresh: readonly StoredEntry[];
      if (at === prevId) fresh = entries;
      else if (compareIds(at, prevId) > 0 && compareIds(at, last.id) < 0) fresh = entries.filter((e) => compareIds(e.id, at) > 0);
      else continue; // behind (the poll serves it) or already has them
      this.deliver(taskId, f, fresh);
    }
    // The next poll reads from the lowest position a follower still has.
    let lowest: string | undefined;
    for (const f of ch.followers) if (lowest === undefined || compareIds(f.lastId, lowest) < 0) lowest = f.lastId;
    if (lowest !== undefined && compareIds(lowest, ch.lastId) > 0) ch.lastId = lowest;
  }

  private deliver(taskId: string, f: Follower, entries: readonly StoredEntry[]): void {
    let keep = false;
    try {
      keep = f.deliver(entries);
    } catch {
      keep = false;
    }
    if (!keep) this.unfollow(taskId, f);
  }

  /**
   * Keeps the task's channel (and its cache of recent entries) while a client streams its logs, whether attached
   * to the fan-out or catching up. Returns the function that lets it go.
   */
  open(taskId: string): () => void {
    const ch = this.channel(taskId, "0");
    ch.holds++;
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      ch.holds--;
      this.release(taskId, ch);
    };
  }

  /**
   * Up to `max` cached entries strictly after `afterId`, in order and without a gap; [] when `afterId` is the
   * cache's latest entry (the store may hold newer ones); null when the cache does not reach back to `afterId`.
   */
  recentAfter(taskId: string, afterId: string, max: number): StoredEntry[] | null {
    const ch = this.channels.get(taskId);
    if (!ch || ch.recent.length === 0) return null;
    if (afterId === ch.recentPrev) return ch.recent.slice(0, max);
    for (let i = ch.recent.length - 1; i >= 0; i--) {
      if ((ch.recent[i] as StoredEntry).id === afterId) return ch.recent.slice(i + 1, i + 1 + max);
    }
    return null;
  }

  /** Adds a follower that has already read up to `follower.lastId`. Returns the function that removes it. */
  follow(taskId: string, follower: Follower): () => void {
    const ch = this.channel(taskId, follower.lastId);
    // The channel reads from the oldest position any follower needs.
    if (ch.followers.size === 0 || compareIds(follower.lastId, ch.lastId) < 0) ch.lastId = follower.lastId;
    ch.followers.add(follower);
    this.schedule(taskId, ch, 0);
    return () => this.unfollow(taskId, follower);
  }

  private channel(taskId: string, lastId: string): Channel {
    let ch = this.channels.get(taskId);
    if (!ch) {
      ch = {
        followers: new Set(),
        holds: 0,
        recent: [],
        recentPrev: null,
        recentBytes: 0,
        lastId,
        timer: undefined,
        polling: false,
        again: false,
      };
      this.channels.set(taskId, ch);
    }
    return ch;
  }

  private unfollow(taskId: string, follower: Follower): void {
    const ch = this.channels.get(taskId);
    if (!ch) return;
    ch.followers.delete(follower);
    this.release(taskId, ch);
  }

  private release(taskId: string, ch: Channel): void {
    if (ch.followers.size > 0) return;
    clearTimeout(ch.timer); // no reads without followers
    ch.timer = undefined;
    if (ch.holds === 0 && this.channels.get(taskId) === ch) this.channels.delete(taskId);
  }

  /**
   * Adds entries that directly follow `prevId` to the cache; a newer, unconnected batch starts it afresh, and an
   * older one (a poll for a follower far behind) leaves it alone.
   */
  private remember(ch: Channel, prevId: string | null, entries: readonly StoredEntry[]): void {
    const last = ch.recent[ch.recent.length - 1];
    const newest = entries[entries.length - 1] as StoredEntry;
    if (last && prevId !== last.id && compareIds(newest.id, last.id) <= 0) return;
    if (!last || prevId !== last.id) {
      ch.recent = [];
      ch.recentBytes = 0;
      ch.recentPrev = prevId;
      if (prevId === null) return;
    }
    for (const e of entries) {
      ch.recent.push(e);
      ch.recentBytes += sizeOf(e);
    }
    // Each followed task gets RECENT_BYTES, less when many are followed at once: the hub's total stays bounded.
    const limit = Math.max(MIN_RECENT_BYTES, Math.min(RECENT_BYTES, Math.floor(HUB_RECENT_BYTES / this.channels.size)));
    let drop = 0;
    while (ch.recentBytes > limit && drop < ch.recent.length - 1) ch.recentBytes -= sizeOf(ch.recent[drop++] as StoredEntry);
    if (drop > 0) {
      ch.recentPrev = (ch.recent[drop - 1] as StoredEntry).id;
      ch.recent = ch.recent.slice(drop);
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
      this.remember(ch, from, entries);
      // A follower that joined during the read with an older position lowered ch.lastId: keep that, so the
      // next poll starts where it needs; everyone else filters out what they already have.
      if (compareIds(ch.lastId, from) >= 0) ch.lastId = (entries[entries.length - 1] as StoredEntry).id;
      for (const f of [...ch.followers]) {
        if (compareIds(f.lastId, from) < 0) continue; // would leave a gap; served by the next poll
        const fresh = entries.filter((e) => compareIds(e.id, f.lastId) > 0);
        if (fresh.length > 0) this.deliver(taskId, f, fresh);
      }
    }
    if (this.channels.get(taskId) === ch && ch.followers.size > 0)
      this.schedule(taskId, ch, ch.again || entries.length >= BATCH ? 0 : this.pollMs);
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
