// Fans a task's new log entries out to every live follower in this process with one store read per poll,
// however many followers there are. A follower that falls behind (slow reader) is dropped from the fan-out
// and catches up from the store on its own, so the hub's memory never grows with a slow client.
import type { LogStore, StoredEntry } from "./log-store.js";

export interface Follower {
  /** Called with entries strictly after the follower's last id, in order. Returns false to detach. */
  deliver(entries: readonly StoredEntry[]): boolean;
  /** The follower's position; the hub never sends entries at or before it. */
  readonly lastId: string;
}

interface Channel {
  readonly followers: Set<Follower>;
  lastId: string;
  timer: NodeJS.Timeout | undefined;
}

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
      ch = { followers: new Set(), lastId: follower.lastId, timer: undefined };
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
      this.channels.delete(taskId);
    }
  }

  private schedule(taskId: string, ch: Channel, ms: number): void {
    if (ch.timer) return;
    ch.timer = setTimeout(() => {
      ch.timer = undefined;
      void this.poll(taskId, ch);
    }, ms);
  }

  private async poll(taskId: string, ch: Channel): Promise<void> {
    let entries: StoredEntry[] = [];
    try {
      entries = await this.logs.readAfter(taskId, ch.lastId, 1000);
    } catch {
      // Redis hiccup: followers keep their position; try again shortly.
    }
    if (entries.length > 0) {
      ch.lastId = (entries[entries.length - 1] as StoredEntry).id;
      for (const f of [...ch.followers]) {
        const fresh = entries.filter((e) => compareIds(e.id, f.lastId) > 0);
        if (fresh.length > 0 && !f.deliver(fresh)) this.unfollow(taskId, f);
      }
    }
    if (this.channels.get(taskId) === ch) this.schedule(taskId, ch, entries.length >= 1000 ? 0 : this.pollMs);
  }
}

/** Orders Redis stream ids ("ms-seq"). */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  return BigInt(am) === BigInt(bm) ? Number(BigInt(as) - BigInt(bs)) : BigInt(am) < BigInt(bm) ? -1 : 1;
}
