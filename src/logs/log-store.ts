// A task's output, in order, as one Redis stream per task. Entry ids ("<ms>-<seq>") are the SSE event ids, so a
// follower can resume strictly after any event. The last entry of a finished task is an `end` marker.
import type { Redis } from "ioredis";
import type { EndEvent, LogStream, TaskStatus } from "../contract/types.js";
import type { Keys } from "../store/keys.js";

export interface LogEntry {
  readonly id: string;
  readonly stream: LogStream;
  readonly text: string;
  /** Milliseconds since the epoch, from the entry id. */
  readonly timeMs: number;
}

export type StoredEntry = LogEntry | { readonly id: string; readonly stream: "end"; readonly end: EndEvent; readonly timeMs: number };

export const LOG_ID_PATTERN = /^\d{1,20}-\d{1,20}$/;

function parse(id: string, fields: string[]): StoredEntry {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
  const timeMs = Number(id.split("-")[0]);
  if (f.s === "end") {
    return { id, stream: "end", timeMs, end: { status: f.status as TaskStatus, exitCode: f.exitCode ? Number(f.exitCode) : null } };
  }
  return { id, stream: (f.s ?? "system") as LogStream, text: f.t ?? "", timeMs };
}

export class LogStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  async append(taskId: string, entries: readonly { stream: LogStream; text: string }[]): Promise<void> {
    if (entries.length === 0) return;
    const pipe = this.redis.pipeline();
    for (const e of entries) pipe.xadd(this.keys.logs(taskId), "*", "s", e.stream, "t", e.text);
    const results = (await pipe.exec()) ?? [];
    const failed = results.find(([err]) => err);
    if (failed?.[0]) throw failed[0];
  }

  async appendEnd(taskId: string, end: EndEvent): Promise<void> {
    await this.redis.xadd(this.keys.logs(taskId), "*", "s", "end", "status", end.status, "exitCode", end.exitCode == null ? "" : String(end.exitCode));
  }

  /** Up to `count` entries strictly after `afterId` ("0" = from the start). */
  async readAfter(taskId: string, afterId: string, count = 500): Promise<StoredEntry[]> {
    const rows = (await this.redis.xrange(this.keys.logs(taskId), `(${afterId}`, "+", "COUNT", count)) as [string, string[]][];
    return rows.map(([id, fields]) => parse(id, fields));
  }

  /** Everything recorded so far, stdout and stderr interleaved in order (system notes excluded), as UTF-8 text. */
  async *readText(taskId: string): AsyncGenerator<string> {
    let after = "0";
    for (;;) {
      // Small batches: entries hold up to 64 Ki characters each, and this runs once per plain-text request.
      const batch = await this.readAfter(taskId, after, 64);
      if (batch.length === 0) return;
      for (const e of batch) {
        if (e.stream === "stdout" || e.stream === "stderr") yield e.text;
      }
      after = (batch[batch.length - 1] as StoredEntry).id;
    }
  }

  async remove(taskId: string): Promise<void> {
    await this.redis.unlink(this.keys.logs(taskId));
  }
}
