// BerthClient: the berth HTTP API (shared/API.md §3) over global fetch (Node 20).
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type ChangeEntry,
  type ChangeList,
  DEFAULT_BERTH_URL,
  MAX_WAIT_SECONDS,
  isFinalStatus,
  type AuditPage,
  type FileEntry,
  type ServerInfo,
  type SubmitTaskRequest,
  type TaskList,
  type TaskStatus,
  type TaskView,
  type TenantUsage,
} from "../contract/types.js";
import {
  etagSha256,
  saveArchive,
  streamArchive,
  type DownloadResult,
  type DownloadStreamOptions,
  type DownloadToFileOptions,
} from "./download.js";
import { BerthApiError, errorFromResponse, isAbortError, unreachableError } from "./errors.js";
import { followEvents, type FollowEvent, type FollowOptions } from "./follow.js";
import { MULTIPLEXED, followOutput, type FollowOutputOptions, type OutputEvent } from "./output.js";

/** Options of {@link BerthClient}. Nothing is read from the environment: the caller decides. */
export interface BerthClientOptions {
  /** Base URL of the API. @defaultValue {@link DEFAULT_BERTH_URL} */
  url?: string;
  /** Sent as `Authorization: Bearer <apiKey>`; the key names the tenant. Omit for a server without keys. */
  apiKey?: string;
  /** A fetch implementation (tests, proxies). @defaultValue the global fetch */
  fetch?: typeof fetch;
}

/** Filters and paging of {@link BerthClient.list}. */
export interface ListTasksOptions {
  status?: TaskStatus;
  /** `"key:value"`, or a `[key, value]` pair. */
  label?: string | readonly [string, string];
  /** Page size, 1–500. @defaultValue 50 (the server's) */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** With an admin key: only this tenant's tasks (without it, every tenant's). */
  tenant?: string;
}

/** Options of {@link BerthClient.audit}. */
export interface AuditOptions {
  /** ISO-8601 time, or a span back from now (`24h`, `7d`). @defaultValue everything kept */
  since?: string;
  /** Entries per page, 1–1000. @defaultValue 100 */
  limit?: number;
  /** `nextCursor` of the previous page (older entries). */
  cursor?: string;
  /** With an admin key: only this tenant's entries (without it, all). */
  tenant?: string;
}

/** Options of {@link BerthClient.wait}. */
export interface WaitOptions {
  /** Give up (with `BerthApiError` code `wait_timeout`) after this long. @defaultValue no limit */
  timeoutMs?: number;
  /**
   * Pause between checks when the server answers a long poll early (a server without long polling, or one
   * shutting down). @defaultValue 1000
   */
  pollMs?: number;
  signal?: AbortSignal;
}

/** The live workspace listing of {@link BerthClient.files}. */
export interface FileListing {
  files: FileEntry[];
  /** True when the server stopped listing at a limit: entries may be missing. */
  truncated: boolean;
}

interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** A client of one berth server, as one tenant. All failures are {@link BerthApiError}s. */
export class BerthClient {
  /** The base URL, without a trailing slash. */
  readonly url: string;
  readonly #apiKey: string | undefined;
  readonly #fetch: typeof fetch;

  constructor(opts: BerthClientOptions = {}) {
    const url = opts.url ?? DEFAULT_BERTH_URL;
    if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
      throw new BerthApiError(0, "invalid_input", `Invalid berth URL "${url}": expected http(s)://host:port, e.g. ${DEFAULT_BERTH_URL}.`);
    }
    this.url = url.replace(/\/+$/, "");
    this.#apiKey = opts.apiKey || undefined;
    this.#fetch = opts.fetch ?? globalThis.fetch;
  }

  /** Submits a task (`202`), or returns the existing one for a known idempotency key (`200`). */
  async submit(req: SubmitTaskRequest, opts: { idempotencyKey?: string; signal?: AbortSignal } = {}): Promise<TaskView> {
    const headers: Record<string, string> = opts.idempotencyKey === undefined ? {} : { "idempotency-key": opts.idempotencyKey };
    return this.#json<TaskView>("POST", "/v1/tasks", { body: req, headers, ...signalOf(opts) });
  }

  /**
   * The task's current view; `404 not_found` for an unknown task or another tenant's. With `waitSeconds` (at most
   * 60), the server holds the answer until the task has ended or that long has passed (a long poll).
   */
  async get(id: string, opts: { signal?: AbortSignal; waitSeconds?: number } = {}): Promise<TaskView> {
    const query = opts.waitSeconds ? `?waitSeconds=${opts.waitSeconds}` : "";
    return this.#json<TaskView>("GET", `${taskPath(id)}${query}`, signalOf(opts));
  }

  /** One page of tasks, newest first. */
  async list(opts: ListTasksOptions = {}): Promise<TaskList> {
    const q = new URLSearchParams();
    if (opts.status !== undefined) q.set("status", opts.status);
    if (opts.label !== undefined) q.set("label", typeof opts.label === "string" ? opts.label : `${opts.label[0]}:${opts.label[1]}`);
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    if (opts.cursor !== undefined) q.set("cursor", opts.cursor);
    if (opts.tenant !== undefined) q.set("tenant", opts.tenant);
    const query = q.toString();
    return this.#json<TaskList>("GET", `/v1/tasks${query ? `?${query}` : ""}`);
  }

  /**
   * What the tenant has queued, running and stored, and the CPU time its tasks used since `since` (ISO-8601 or a
   * span such as `24h`; by default 30 days). An admin key names the tenant.
   */
  async usage(opts: { since?: string; tenant?: string } = {}): Promise<TenantUsage> {
    const q = new URLSearchParams();
    if (opts.since !== undefined) q.set("since", opts.since);
    if (opts.tenant !== undefined) q.set("tenant", opts.tenant);
    const query = q.toString();
    return this.#json<TenantUsage>("GET", `/v1/usage${query ? `?${query}` : ""}`);
  }

  /** What this server accepts, and who the key is (its tenant, or an admin). */
  async info(): Promise<ServerInfo> {
    return this.#json<ServerInfo>("GET", "/v1/info");
  }

  /** Every tenant's usage (an admin key only). */
  async usageOfAll(opts: { since?: string } = {}): Promise<TenantUsage[]> {
    const query = opts.since !== undefined ? `?${new URLSearchParams({ since: opts.since }).toString()}` : "";
    return (await this.#json<{ tenants: TenantUsage[] }>("GET", `/v1/usage${query}`)).tenants;
  }

  /** One page of the audit trail, newest first: the tenant's own, or with an admin key every tenant's (or `tenant`'s). */
  async audit(opts: AuditOptions = {}): Promise<AuditPage> {
    const q = new URLSearchParams();
    if (opts.since !== undefined) q.set("since", opts.since);
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    if (opts.cursor !== undefined) q.set("cursor", opts.cursor);
    if (opts.tenant !== undefined) q.set("tenant", opts.tenant);
    const query = q.toString();
    return this.#json<AuditPage>("GET", `/v1/audit${query ? `?${query}` : ""}`);
  }

  /** Every task matching the filters, newest first, fetching page after page (`limit` per page) as you iterate. */
  async *listAll(opts: Omit<ListTasksOptions, "cursor"> = {}): AsyncGenerator<TaskView, void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.list(cursor === undefined ? opts : { ...opts, cursor });
      yield* page.tasks;
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
  }

  /**
   * Resolves with the task's view once it reaches a final status (`succeeded`, `failed`, `timed_out`, `canceled`,
   * `expired`), by long polls that the server answers the moment the task ends.
   */
  async wait(id: string, opts: WaitOptions = {}): Promise<TaskView> {
    const { timeoutMs = Infinity, pollMs = 1000 } = opts;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waitSeconds = Math.max(0, Math.min(MAX_WAIT_SECONDS, Math.floor((deadline - Date.now()) / 1000)));
      const asked = Date.now();
      const view = await this.get(id, { ...signalOf(opts), waitSeconds });
      if (isFinalStatus(view.status)) return view;
      if (Date.now() >= deadline) {
        throw new BerthApiError(0, "wait_timeout", `Task "${id}" is still ${view.status} after ${timeoutMs} ms of waiting.`);
      }
      // Less than a second left, or answered well before the wait asked for: pause, so the server is not asked
      // in a tight loop.
      if (waitSeconds === 0 || Date.now() - asked < waitSeconds * 1000 - 100)
        await sleep(Math.min(pollMs, Math.max(0, deadline - Date.now())), undefined, signalOf(opts));
    }
  }

  /** Cancels a queued or running task (`409 wrong_state` once finished); returns the view at that moment. */
  async cancel(id: string): Promise<TaskView> {
    return this.#json<TaskView>("POST", `${taskPath(id)}/cancel`);
  }

  /** Deletes the task (canceling it if needed) with its workspace, archive and logs. */
  async delete(id: string): Promise<void> {
    const res = await this.#send("DELETE", taskPath(id));
    await res.arrayBuffer().catch(() => undefined);
  }

  /** Everything logged so far as text, stdout and stderr interleaved in order. */
  async logs(id: string): Promise<string> {
    const res = await this.#send("GET", `${taskPath(id)}/logs`, { headers: { accept: "text/plain" } });
    return this.#read(res, `${taskPath(id)}/logs`, (r) => r.text());
  }

  /**
   * Follows the task's logs live (SSE): log entries in order, then one `{type: "end"}` marker, after which the
   * iteration ends. Dropped connections are resumed after the last entry seen (bounded retries with backoff).
   * Breaking out of the loop closes the connection.
   */
  follow(id: string, opts: FollowOptions = {}): AsyncGenerator<FollowEvent, void, undefined> {
    const urlPath = `${taskPath(id)}/logs`;
    return followEvents(
      id,
      async (lastEventId, signal) => {
        const headers: Record<string, string> = { accept: "text/event-stream" };
        if (lastEventId !== undefined) headers["last-event-id"] = lastEventId;
        const res = await this.#send("GET", urlPath, { headers, signal });
        if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
          await res.body?.cancel().catch(() => undefined);
          throw new BerthApiError(res.status, "invalid_response", `${this.url}${urlPath} did not answer with an event stream.`);
        }
        return res;
      },
      opts,
    );
  }

  /**
   * Follows the task's output as raw bytes, exactly as printed (`?follow=true`, no JSON on the way): chunks of stdout
   * and stderr in order, then one `{type: "end"}` marker with the final status, after which the iteration ends.
   * Dropped connections are resumed at the byte offset reached (bounded retries with backoff). What a program
   * needs; {@link follow} gives entries with ids and times (SSE) instead. Breaking out of the loop closes the
   * connection.
   */
  followOutput(id: string, opts: FollowOutputOptions = {}): AsyncGenerator<OutputEvent, void, undefined> {
    const urlPath = `${taskPath(id)}/logs`;
    const select = opts.stream ? `&stream=${opts.stream}` : "";
    return followOutput(
      id,
      async (offset, signal) => {
        const query = `?follow=true${select}${offset > 0 ? `&offset=${offset}` : ""}`;
        const res = await this.#send("GET", `${urlPath}${query}`, { headers: { accept: MULTIPLEXED }, signal });
        if (!(res.headers.get("content-type") ?? "").startsWith(MULTIPLEXED)) {
          await res.body?.cancel().catch(() => undefined);
          throw new BerthApiError(res.status, "invalid_response", `${this.url}${urlPath} did not answer with raw output.`);
        }
        return res;
      },
      (signal) => this.wait(id, { signal }),
      opts,
    );
  }

  /**
   * Downloads the task's archive (`409 archive_not_ready` until it exists). Into a file by default (`file`, or
   * `<workspace>.tar.gz`), verified against the task view's `archive.sha256`; or, with `{stream: true}`, as a Readable.
   * With `changesOnly`, the change-only archive (default file `<workspace>.changes.tar.gz`), verified against its
   * own sha256 (its ETag).
   */
  download(id: string, opts: DownloadStreamOptions): Promise<Readable>;
  download(id: string, opts?: DownloadToFileOptions): Promise<DownloadResult>;
  async download(id: string, opts: DownloadToFileOptions | DownloadStreamOptions = {}): Promise<Readable | DownloadResult> {
    const urlPath = `${taskPath(id)}/archive${opts.changesOnly ? "?changes=only" : ""}`;
    const res = await this.#send("GET", urlPath, { headers: { accept: "application/gzip" }, ...signalOf(opts) });
    const url = `${this.url}${urlPath}`;
    if ("stream" in opts) return streamArchive(res, url, opts.onProgress);
    try {
      if (opts.changesOnly) {
        // Its sha256 is its own, sent with it (the task view's is the whole archive's).
        const sha256 = etagSha256(res);
        if (!sha256) throw new BerthApiError(res.status, "invalid_response", `${url} sent no sha256 to check the download against.`);
        const view = opts.file ? null : await this.get(id, signalOf(opts));
        return await saveArchive(res, url, opts.file ?? `${view?.workspace}.changes.tar.gz`, sha256, opts.onProgress);
      }
      const view = await this.get(id, signalOf(opts));
      if (!view.archive) throw new BerthApiError(409, "archive_not_ready", `Task "${id}" has no archive any more.`);
      return await saveArchive(res, url, opts.file ?? `${view.workspace}.tar.gz`, view.archive.sha256, opts.onProgress);
    } finally {
      await res.body?.cancel().catch(() => undefined);
    }
  }

  /**
   * One page of what the task changed in its workspace, against its starting workspace (its `files`, and its
   * fromTask's final workspace), in path order, with the summary; `nextCursor` continues (null on the last page).
   * `409 changes_not_available` until the task has ended, or when its changes were not recorded.
   */
  async changes(id: string, opts: { cursor?: string; limit?: number; signal?: AbortSignal } = {}): Promise<ChangeList> {
    const q = new URLSearchParams();
    if (opts.cursor !== undefined) q.set("cursor", opts.cursor);
    if (opts.limit !== undefined) q.set("limit", String(opts.limit));
    const query = q.size > 0 ? `?${q}` : "";
    return this.#json<ChangeList>("GET", `${taskPath(id)}/changes${query}`, signalOf(opts));
  }

  /** Every change, page after page (in path order). */
  async *allChanges(id: string, opts: { signal?: AbortSignal } = {}): AsyncGenerator<ChangeEntry, void, undefined> {
    let cursor: string | null | undefined;
    do {
      const page = await this.changes(id, { ...(cursor ? { cursor } : {}), ...signalOf(opts) });
      yield* page.changes;
      cursor = page.nextCursor;
    } while (cursor);
  }

  /**
   * The unified diff (git's format) of the changed text files, or of `path` only; binary and large files are named,
   * not diffed. `truncated` when the server cut it at its size bound (the text then ends with a note).
   */
  async diff(id: string, opts: { path?: string; signal?: AbortSignal } = {}): Promise<{ text: string; truncated: boolean }> {
    const urlPath = `${taskPath(id)}/diff${opts.path === undefined ? "" : `?path=${encodeURIComponent(opts.path)}`}`;
    const res = await this.#send("GET", urlPath, { headers: { accept: "text/x-diff" }, ...signalOf(opts) });
    const text = await this.#read(res, urlPath, (r) => r.text());
    return { text, truncated: res.headers.get("x-berth-diff-truncated") === "true" };
  }

  /** The live workspace listing (also while the task runs). */
  async files(id: string): Promise<FileListing> {
    const listing = await this.#json<{ files: FileEntry[]; truncated?: boolean }>("GET", `${taskPath(id)}/files`);
    return { files: listing.files, truncated: listing.truncated ?? false };
  }

  /** A workspace file's raw bytes. `filePath` is relative (`src/a.py`); each segment is percent-encoded. */
  async readFile(id: string, filePath: string): Promise<Buffer> {
    const segments = filePath.split("/").filter((s) => s !== "");
    if (segments.length === 0 || segments.some((s) => s === "." || s === "..")) {
      throw new BerthApiError(
        0,
        "invalid_input",
        `Invalid workspace path "${filePath}": name a file relative to the workspace, without "." or ".." segments.`,
      );
    }
    const urlPath = `${taskPath(id)}/files/${segments.map(encodeURIComponent).join("/")}`;
    const res = await this.#send("GET", urlPath);
    return this.#read(res, urlPath, async (r) => Buffer.from(await r.arrayBuffer()));
  }

  async #json<T>(method: string, urlPath: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.#send(method, urlPath, { ...opts, headers: { accept: "application/json", ...opts.headers } });
    return this.#read(res, urlPath, async (r) => (await r.json()) as T);
  }

  /** One request; non-2xx answers and network failures become {@link BerthApiError}s. */
  async #send(method: string, urlPath: string, opts: RequestOptions = {}): Promise<Response> {
    const url = `${this.url}${urlPath}`;
    const headers: Record<string, string> = { ...opts.headers };
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    const init: RequestInit = { method, headers };
    if (opts.signal) init.signal = opts.signal;
    if (opts.body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await this.#fetch(url, init);
    } catch (err) {
      if (isAbortError(err)) throw err;
      throw unreachableError(this.url, err);
    }
    if (!res.ok) throw await errorFromResponse(res, `${method} ${url}`);
    return res;
  }

  /** Reads a body; a connection lost half-way is "unreachable", not a parse error. */
  async #read<T>(res: Response, urlPath: string, read: (res: Response) => Promise<T>): Promise<T> {
    try {
      return await read(res);
    } catch (err) {
      if (isAbortError(err)) throw err;
      if (err instanceof SyntaxError)
        throw new BerthApiError(res.status, "invalid_response", `${this.url}${urlPath} answered with a body that is not JSON.`, {
          cause: err,
        });
      throw unreachableError(this.url, err);
    }
  }
}

/** `/v1/tasks/<id>`, refusing ids that URL normalization would turn into another path. */
function taskPath(id: string): string {
  if (id === "" || /^\.+$/.test(id)) throw new BerthApiError(0, "invalid_input", `Invalid task id "${id}".`);
  return `/v1/tasks/${encodeURIComponent(id)}`;
}

const signalOf = (opts: { signal?: AbortSignal }): { signal?: AbortSignal } => (opts.signal ? { signal: opts.signal } : {});
