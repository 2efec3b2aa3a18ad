// The tenant's task changes, shared by every part of the page: one `GET /v1/events` stream while signed in.
import { useEffect, useRef } from "preact/hooks";
import type { TaskCounts, TaskView } from "../contract/types.js";
import type { Api } from "./api.js";

export type LiveEvent =
  /** (Re)connected, or changes may have been missed: re-read what is shown. */
  | { type: "open" }
  | { type: "down" }
  | { type: "task"; task: TaskView }
  | { type: "deleted"; id: string }
  | { type: "counts"; counts: TaskCounts };

export class Live {
  private readonly listeners = new Set<(e: LiveEvent) => void>();
  private readonly controller = new AbortController();
  counts: TaskCounts | null = null;
  connected = false;

  constructor(api: Api) {
    void api.watch(this.controller.signal, {
      onOpen: () => {
        this.connected = true;
        this.emit({ type: "open" });
      },
      onDown: () => {
        this.connected = false;
        this.emit({ type: "down" });
      },
      onEvent: (event, data) => {
        if (event === "task") this.emit({ type: "task", task: data as TaskView });
        else if (event === "deleted") this.emit({ type: "deleted", id: (data as { id: string }).id });
        else if (event === "counts") {
          this.counts = data as TaskCounts;
          this.emit({ type: "counts", counts: this.counts });
        }
      },
    });
  }

  subscribe(fn: (e: LiveEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    this.controller.abort();
    this.listeners.clear();
  }

  private emit(e: LiveEvent): void {
    for (const fn of [...this.listeners]) fn(e);
  }
}

/** Calls `fn` (its latest version) on every live event while the component is mounted. */
export function useLive(live: Live, fn: (e: LiveEvent) => void): void {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => live.subscribe((e) => latest.current(e)), [live]);
}
