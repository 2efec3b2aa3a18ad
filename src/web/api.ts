// The dashboard's only way to the server: the public HTTP API with `Authorization: Bearer <key>`, exactly what a
// script would send. Log streams reuse the SDK's follower (SSE over fetch, resumed with Last-Event-ID).
import { BerthApiError, errorFromResponse, unreachableError } from "../client/errors.js";
import { type FollowEvent, followEvents } from "../client/follow.js";
import { SseParser } from "../client/sse.js";
import type { ChangeList, FileEntry, ServerInfo, SubmitTaskRequest, TaskList, TaskView } from "../contract/types.js";

export { BerthApiError };

export class Api {
  constructor(
    private readonly key: string | null,
    /** Called when the server refuses the key (401): the app signs out. */
    private readonly onUnauthorized: () => void = () => undefined,
  ) {}

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.key ? { ...extra, authorization: `Bearer ${this.key}` } : extra;
  }

  /** A request; non-2xx answers become {@link BerthApiError} with the server's message. */
  async fetch(path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(path, { ...init, headers: this.headers(init.headers), cache: "no-store", credentials: "omit" });
    } catch (err) {
      if (err instanceof DOMException && err.name === "AbortError") throw err;
      throw unreachableError(location.origin, err);
    }
    if (!res.ok) {
      const error = await errorFromResponse(res, `${init.method ?? "GET"} ${path}`);
      if (res.status === 401) this.onUnauthorized();
      throw error;
    }
    return res;
  }

  async json<T>(path: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<T> {
    return (await (await this.fetch(path, init)).json()) as T;
  }

  info(): Promise<ServerInfo> {
    return this.json<ServerInfo>("/v1/info");
  }

  list(
    query: { status?: string; label?: string; tenant?: string; limit: number; cursor?: string | null },
    signal?: AbortSignal,
  ): Promise<TaskList> {
    const q = new URLSearchParams({ limit: String(query.limit) });
    if (query.tenant) q.set("tenant", query.tenant);
    if (query.status) q.set("status", query.status);
    if (query.label) q.set("label", query.label);
    if (query.cursor) q.set("cursor", query.cursor);
    return this.json<TaskList>(`/v1/tasks?${q}`, signal ? { signal } : {});
  }

  task(id: string, signal?: AbortSignal): Promise<TaskView> {
    return this.json<TaskView>(`/v1/tasks/${encodeURIComponent(id)}`, signal ? { signal } : {});
  }

  submit(body: SubmitTaskRequest): Promise<TaskView> {
    return this.json<TaskView>("/v1/tasks", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  }

  cancel(id: string): Promise<TaskView> {
    return this.json<TaskView>(`/v1/tasks/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  }

  async remove(id: string): Promise<void> {
    await this.fetch(`/v1/tasks/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  async files(id: string): Promise<{ files: FileEntry[]; truncated?: boolean }> {
    return this.json(`/v1/tasks/${encodeURIComponent(id)}/files`);
  }

  /** One page of what the task changed (`cursor` from the previous page's `nextCursor`). */
  changes(id: string, cursor: string | null, signal?: AbortSignal): Promise<ChangeList> {
    const q = new URLSearchParams({ limit: "200" });
    if (cursor) q.set("cursor", cursor);
    return this.json<ChangeList>(`/v1/tasks/${encodeURIComponent(id)}/changes?${q}`, signal ? { signal } : {});
  }

  /** The unified diff of one changed path, as text; `truncated` when the server cut it short. */
  async diff(id: string, path: string, signal?: AbortSignal): Promise<{ text: string; truncated: boolean }> {
    const q = new URLSearchParams({ path });
    const res = await this.fetch(`/v1/tasks/${encodeURIComponent(id)}/diff?${q}`, signal ? { signal } : {});
    return { text: await res.text(), truncated: res.headers.get("x-berth-diff-truncated") === "true" };
  }

  fileUrl(id: string, path: string): string {
    return `/v1/tasks/${encodeURIComponent(id)}/files/${path.split("/").map(encodeURIComponent).join("/")}`;
  }

  /** A response's body as a Blob (downloads go through the key, so they cannot be plain links). */
  async blob(path: string): Promise<Blob> {
    return (await this.fetch(path)).blob();
  }

  /**
   * The task's log events, live; reconnects with Last-Event-ID after a dropped connection, for as long as needed.
   * `onOpen` runs whenever a connection is made, `onReconnect` before each new attempt.
   */
  follow(id: string, signal: AbortSignal, on: { onOpen(): void; onReconnect(attempt: number): void }): AsyncGenerator<FollowEvent> {
    const open = async (lastEventId: string | undefined, s: AbortSignal) => {
      const res = await this.fetch(`/v1/tasks/${encodeURIComponent(id)}/logs`, {
        signal: s,
        headers: { accept: "text/event-stream", ...(lastEventId ? { "last-event-id": lastEventId } : {}) },
      });
      on.onOpen();
      return res;
    };
    const onReconnect = on.onReconnect;
    return followEvents(id, open, { signal, maxRetries: Number.POSITIVE_INFINITY, maxRetryDelayMs: 3000, onReconnect });
  }

  /**
   * The tenant's task changes (`GET /v1/events`) until `signal` aborts, reconnecting after any failure. `onOpen` runs
   * on every (re)connection: what the page shows must then be read again, since changes are not replayed.
   */
  async watch(
    signal: AbortSignal,
    handlers: { onOpen(): void; onEvent(event: string, data: unknown): void; onDown(err: unknown): void },
  ): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      try {
        const res = await this.fetch("/v1/events", { signal, headers: { accept: "text/event-stream" } });
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        const decoder = new TextDecoder();
        const parser = new SseParser();
        handlers.onOpen();
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) break;
          for (const m of parser.push(decoder.decode(chunk.value, { stream: true }))) {
            failures = 0;
            if (m.event === "resync") handlers.onOpen();
            else handlers.onEvent(m.event, JSON.parse(m.data));
          }
        }
        throw new Error("the server closed the event stream");
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof BerthApiError && err.status === 401) return;
        handlers.onDown(err);
        failures++;
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(failures, 5))));
      }
    }
  }
}

/** Saves a Blob as a file the browser downloads. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.rel = "noopener";
  document.body.append(a);
  a.click();
  a.remove();
  // The download has started from the object URL by the time this runs.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
