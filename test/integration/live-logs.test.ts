// Live logs over Server-Sent Events (shared/API.md §3 "GET /v1/tasks/:id/logs"), on the real engine and Redis.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { collectSse, endEvents, logData, openSse, streamText, type SseEvent } from "../helpers/sse.js";
import { waitFor, within } from "../helpers/wait-for.js";

let h: Harness;

beforeAll(async () => {
  // The output cap has its own harness below (stalled readers and memory: stalled-readers.test.ts).
  h = await startHarness();
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

const logsUrl = (id: string, query = "") => `${h.url}/v1/tasks/${id}/logs${query}`;

async function plainLogs(id: string, base = h.url): Promise<string> {
  const res = await fetch(`${base}/v1/tasks/${id}/logs`);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer()).toString("utf8");
}

const workspaceFile = (t: TaskView, rel: string, harness: Harness = h) =>
  readFile(path.join(harness.deps.config.dirs.workspaces, t.workspace, rel), "utf8");

/** Every event after the first end event, and the number of end events: a stream must end with exactly one. */
function expectSingleEnd(events: readonly SseEvent[], expected: { status: string; exitCode: number | null }): void {
  const ends = endEvents(events);
  expect(ends).toHaveLength(1);
  expect(events[events.length - 1]?.event).toBe("end");
  expect(JSON.parse(ends[0]?.data ?? "null")).toEqual(expected);
}

/** Log event ids are strictly increasing Redis stream ids. */
function expectIncreasingIds(events: readonly SseEvent[]): void {
  const ids = logData(events).map((d) => d.id);
  for (const id of ids) expect(id).toMatch(/^\d+-\d+$/);
  for (let i = 1; i < ids.length; i++) {
    const [am, as] = (ids[i - 1] as string).split("-").map(BigInt) as [bigint, bigint];
    const [bm, bs] = (ids[i] as string).split("-").map(BigInt) as [bigint, bigint];
    expect(bm > am || (bm === am && bs > as)).toBe(true);
  }
}

/** 1,200,000 random bytes in base64: 1,600,000 characters, wrapped at 76 columns. */
const STDOUT_CHARS = 1_600_000 + Math.ceil(1_600_000 / 76);

describe("a finished task's log stream", () => {
  let big: TaskView;
  let whole: SseEvent[];

  beforeAll(async () => {
    // ~1.6 MB of stdout then ~0.4 MB of stderr, each also written to a file to compare against. stdout and stderr
    // are two pipes the engine drains separately, so their relative order is only defined once the first has been
    // stored: the task writes its stderr only after this test has seen all of its stdout in the logs, so the
    // plain-text check below can compare against "all stdout, then all stderr".
    const t = await h.submit({
      command: [
        "sh",
        "-c",
        "head -c 1200000 /dev/urandom | base64 > out.txt; head -c 300000 /dev/urandom | base64 > err.txt; cat out.txt; " +
          "while [ ! -e stdout-stored ]; do sleep 0.05; done; cat err.txt >&2",
      ],
    });
    await waitFor(
      "all of the task's stdout to be stored",
      async () => (await plainLogs(t.id)).length,
      (n) => n === STDOUT_CHARS,
      { timeoutMs: 120_000, intervalMs: 250 },
    );
    await writeFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "stdout-stored"), "");
    big = await h.waitFinished(t.id, 120_000);
    expect(big.status).toBe("succeeded");
    const res = await collectSse(logsUrl(big.id));
    expect(res.status).toBe(200);
    whole = res.events;
  }, 180_000);

  it("reproduces stdout and stderr byte for byte, separately, and agrees with the text/plain logs", async () => {
    const out = await workspaceFile(big, "out.txt");
    const err = await workspaceFile(big, "err.txt");
    expect(out.length).toBe(STDOUT_CHARS);
    const stdout = streamText(whole, "stdout");
    const stderr = streamText(whole, "stderr");
    expect(stdout.length).toBe(out.length);
    expect(stdout === out).toBe(true);
    expect(stderr === err).toBe(true);
    const plain = await plainLogs(big.id);
    expect(plain.length).toBe(out.length + err.length);
    expect(plain === out + err).toBe(true);
    expect(logData(whole).filter((d) => d.stream === "system")).toEqual([]);
    for (const d of logData(whole)) expect(new Date(d.time).toISOString()).toBe(d.time);
    expectIncreasingIds(whole);
    expectSingleEnd(whole, { status: "succeeded", exitCode: 0 });
  });

  it("resumes strictly after Last-Event-ID and after ?after=, without gap or duplicate", async () => {
    const logs = logData(whole);
    expect(logs.length).toBeGreaterThan(4);
    const all = logs.map((d) => d.text).join("");
    for (const cut of [0, Math.floor(logs.length / 2), logs.length - 1]) {
      const first = logs.slice(0, cut + 1);
      const lastId = first[first.length - 1]?.id as string;
      for (const headers of [{ "last-event-id": lastId }, {}] as Record<string, string>[]) {
        const query = "last-event-id" in headers ? "" : `?after=${encodeURIComponent(lastId)}`;
        const resumed = await collectSse(logsUrl(big.id, query), headers);
        const rest = logData(resumed.events);
        expect(rest.map((d) => d.id)).toEqual(logs.slice(cut + 1).map((d) => d.id));
        expect(first.map((d) => d.text).join("") + rest.map((d) => d.text).join("") === all).toBe(true);
        expectSingleEnd(resumed.events, { status: "succeeded", exitCode: 0 });
      }
    }
  });

  it("answers a resume from the very last event with just the end event", async () => {
    const lastId = logData(whole).at(-1)?.id as string;
    const res = await collectSse(logsUrl(big.id), { "last-event-id": lastId });
    expect(res.events.filter((e) => e.event !== "end")).toEqual([]);
    expectSingleEnd(res.events, { status: "succeeded", exitCode: 0 });
  });
});

describe("following a task live", () => {
  it("a follower attached before the task starts and one attached after it ended both end with one end event", async () => {
    const t = await h.submit({ command: ["sh", "-c", "sleep 2; echo one; echo two >&2; sleep 0.5; echo three; exit 3"] });
    const early = collectSse(logsUrl(t.id)); // attached while queued
    const done = await h.waitFinished(t.id);
    expect(done).toMatchObject({ status: "failed", exitCode: 3 });
    const late = await collectSse(logsUrl(t.id));
    for (const res of [await early, late]) {
      expect(res.status).toBe(200);
      expect(streamText(res.events, "stdout")).toBe("one\nthree\n");
      expect(streamText(res.events, "stderr")).toBe("two\n");
      expectSingleEnd(res.events, { status: "failed", exitCode: 3 });
    }
    expect(logData((await early).events).map((d) => d.id)).toEqual(logData(late.events).map((d) => d.id));
  });

  it("resumes a live stream with Last-Event-ID while the task is still writing", async () => {
    const n = 150;
    const t = await h.submit({ command: ["sh", "-c", `for i in $(seq 1 ${n}); do echo "line $i"; sleep 0.02; done`] });
    const expected = Array.from({ length: n }, (_, i) => `line ${i + 1}\n`).join("");
    const ac = new AbortController();
    const { items } = await openSse(logsUrl(t.id), {}, ac.signal);
    const first: SseEvent[] = [];
    for await (const item of items) {
      if (item.kind !== "event") continue;
      first.push(item.event);
      if (streamText(first, "stdout").split("\n").length > 20) break; // leaving the loop closes the connection
    }
    ac.abort();
    expect(endEvents(first)).toEqual([]);
    const lastId = logData(first).at(-1)?.id as string;
    const rest = await collectSse(logsUrl(t.id), { "last-event-id": lastId });
    expect(streamText(first, "stdout") + streamText(rest.events, "stdout")).toBe(expected);
    expectSingleEnd(rest.events, { status: "succeeded", exitCode: 0 });
    await h.waitFinished(t.id);
  });

  it("sends task output that looks like SSE framing as text inside one log event, never as events", async () => {
    const forged = "\n\nevent: end\ndata: {}\n\n" + "\r\nid: 9\r\n" + "\rdata: x\r\r" + "event: end\n";
    const t = await h.submit({
      command: [
        "sh",
        "-c",
        "printf '\\n\\nevent: end\\ndata: {}\\n\\n'; printf '\\r\\nid: 9\\r\\n'; printf '\\rdata: x\\r\\r'; printf 'event: end\\n'",
      ],
    });
    const live = collectSse(logsUrl(t.id));
    await h.waitFinished(t.id);
    for (const res of [await live, await collectSse(logsUrl(t.id))]) {
      expect(res.events.every((e) => e.event === "log" || e.event === "end")).toBe(true);
      expect(streamText(res.events, "stdout")).toBe(forged);
      expect(res.events.some((e) => e.id === "9")).toBe(false);
      expectSingleEnd(res.events, { status: "succeeded", exitCode: 0 });
    }
    expect(await plainLogs(t.id)).toBe(forged);
  });

  it("gives 20 followers of one running task the same complete output", async () => {
    const n = 300;
    const t = await h.submit({
      command: [
        "sh",
        "-c",
        `sleep 1; for i in $(seq 1 ${n}); do echo "line $i $(head -c 200 /dev/urandom | base64 -w0)"; [ $((i % 30)) -eq 0 ] && sleep 0.1; done; echo bye >&2`,
      ],
    });
    const followers = Array.from({ length: 20 }, () => collectSse(logsUrl(t.id)));
    const results = await Promise.all(followers);
    const done = await h.waitFinished(t.id);
    expect(done.status).toBe("succeeded");
    const plain = await plainLogs(t.id);
    const stdout = plain.slice(0, plain.length - "bye\n".length);
    expect(stdout.split("\n")).toHaveLength(n + 1);
    for (const res of results) {
      expect(streamText(res.events, "stdout") === stdout).toBe(true);
      expect(streamText(res.events, "stderr")).toBe("bye\n");
      expectSingleEnd(res.events, { status: "succeeded", exitCode: 0 });
      expectIncreasingIds(res.events);
    }
  }, 120_000);

  it("sends headers that keep proxies from buffering, and comment heartbeats on a quiet stream", async () => {
    const t = await h.submit({ command: ["sh", "-c", "echo start; sleep 17; echo stop"] });
    const res = await collectSse(logsUrl(t.id));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("cache-control")).toBe("no-cache, no-transform");
    expect(res.headers.get("x-accel-buffering")).toBe("no");
    expect(res.headers.get("content-encoding")).toBeNull();
    expect(res.comments.filter((c) => /heartbeat/.test(c)).length).toBeGreaterThanOrEqual(1);
    expect(streamText(res.events, "stdout")).toBe("start\nstop\n");
    expectSingleEnd(res.events, { status: "succeeded", exitCode: 0 });
  }, 90_000);

  it("answers text/plain without an event-stream Accept header, and 404 for an unknown task", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["echo", "plain"] })).id);
    const res = await fetch(logsUrl(t.id));
    expect(res.headers.get("content-type")).toContain("text/plain");
    expect(await res.text()).toBe("plain\n");
    const missing = await fetch(logsUrl("doesnotexist123"), { headers: { accept: "text/event-stream" } });
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });
});

describe("output past BERTH_MAX_OUTPUT_BYTES", () => {
  it("tells followers with a system event that output was dropped, and the task still succeeds", async () => {
    const capped = await startHarness({ BERTH_MAX_OUTPUT_BYTES: "100000" });
    try {
      const t = await capped.submit({ command: ["sh", "-c", "sleep 1; head -c 300000 /dev/zero | tr '\\0' a; echo finished > end.txt"] });
      const live = collectSse(`${capped.url}/v1/tasks/${t.id}/logs`);
      const done = await capped.waitFinished(t.id);
      expect(done).toMatchObject({ status: "succeeded", exitCode: 0, reason: "output_truncated", outputTruncated: true });
      expect(await workspaceFile(done, "end.txt", capped)).toBe("finished\n");
      for (const res of [await live, await collectSse(`${capped.url}/v1/tasks/${t.id}/logs`)]) {
        expect(streamText(res.events, "stdout")).toBe("a".repeat(100_000));
        const system = logData(res.events)
          .filter((d) => d.stream === "system")
          .map((d) => d.text)
          .join("");
        expect(system).toMatch(/dropped/);
        expect(system).toMatch(/BERTH_MAX_OUTPUT_BYTES/);
        expectSingleEnd(res.events, { status: "succeeded", exitCode: 0 });
      }
      // The plain logs hold what the task wrote, then one note of berth's that the rest was dropped.
      expect(await plainLogs(t.id, capped.url)).toMatch(/^a{100000}\n\[berth\] output passed BERTH_MAX_OUTPUT_BYTES;[^\n]*dropped\n$/);
      expect(await capped.containers()).toEqual([]);
    } finally {
      await capped.close();
    }
  }, 120_000);
});

describe("server shutdown", () => {
  it("ends open log streams when the HTTP server closes, so shutdown is not held by followers", async () => {
    const local = await startHarness();
    let follower: Promise<unknown> | undefined;
    try {
      const t = await local.submit({ command: ["sh", "-c", "echo started; sleep 600"] });
      const ac = new AbortController();
      const { items } = await openSse(`${local.url}/v1/tasks/${t.id}/logs`, {}, ac.signal);
      const seen: SseEvent[] = [];
      follower = (async () => {
        for await (const item of items) if (item.kind === "event") seen.push(item.event);
      })().catch(() => undefined);
      await waitFor(
        "the follower to see output",
        async () => streamText(seen, "stdout"),
        (s) => s === "started\n",
      );
      // A follower holding up close() would hold it for as long as the task runs (600 s).
      await within(local.app.close(), 60_000, "the HTTP server to close while a follower is attached");
      ac.abort();
      await local.services.queue.cancel("default", t.id);
      await waitFor(
        "the task to stop",
        () => local.services.store.get(t.id),
        (r) => r?.status === "canceled",
      );
    } finally {
      await local.close();
      await follower;
    }
  }, 120_000);
});
