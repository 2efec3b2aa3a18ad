// Hostile log followers (issue 16, item 1): clients that open log streams and never read them cannot starve other
// tenants' requests, cannot make the server read more than a bounded amount at once, and cannot open streams
// without bound. Attacks run on loopback with a bounded number of sockets.
import { readFile } from "node:fs/promises";
import { LOG_READS_AT_ONCE } from "../../src/api/server.js";
import { MAX_BUFFERED_BYTES } from "../../src/api/follow-stream.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";
import { SSE_HEADERS } from "../helpers/sse.js";
import { logReadsSettled, startStalledReaders, type StalledReaders } from "../helpers/stalled-readers.js";
import { waitFor } from "../helpers/wait-for.js";

const KEYS = "a:tenant-a-key-00000001,b:tenant-b-key-00000001";
const A = { authorization: "Bearer tenant-a-key-00000001" };
const B = { authorization: "Bearer tenant-b-key-00000001" };
/** ~10 MiB of output in entries of 64 KiB (the default output cap keeps 10 MiB of it). */
const TEN_MIB_TASK = { command: ["sh", "-c", "head -c 8000000 /dev/urandom | base64 -w 1000"] };
const MB = 1024 * 1024;

describe("caps on open log streams", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(
      { BERTH_API_KEYS: KEYS, BERTH_TENANT_MAX_LOG_STREAMS: "3", BERTH_MAX_LOG_STREAMS: "4", BERTH_RATE_LIMIT_PER_MINUTE: "0" },
      { worker: false },
    );
  });

  afterAll(async () => {
    await h?.close();
  });

  it("answers 429 with Retry-After past a tenant's cap and past the server's, and frees the slot when a stream closes", async () => {
    // Queued tasks (no worker here): their streams stay open until the client leaves.
    const ta = await h.submit({ command: ["true"] }, A);
    const tb = await h.submit({ command: ["true"] }, B);
    const open: AbortController[] = [];
    const follow = async (id: string, headers: Record<string, string>, accept: Record<string, string> = SSE_HEADERS) => {
      const ac = new AbortController();
      const res = await fetch(`${h.url}/v1/tasks/${id}/logs`, { headers: { ...accept, ...headers }, signal: ac.signal });
      if (res.status === 200) open.push(ac);
      return res;
    };
    try {
      for (let i = 0; i < 3; i++) expect((await follow(ta.id, A)).status).toBe(200);
      const over = await follow(ta.id, A);
      expect(over.status).toBe(429);
      expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
      const body = (await over.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("too_many_streams");
      expect(body.error.message).toMatch(/BERTH_TENANT_MAX_LOG_STREAMS allows \(3\)/);
      // Plain-text logs count too.
      expect((await follow(ta.id, A, {})).status).toBe(429);

      expect((await follow(tb.id, B)).status).toBe(200);
      const full = await follow(tb.id, B);
      expect(full.status).toBe(429);
      expect(((await full.json()) as { error: { message: string } }).error.message).toMatch(/BERTH_MAX_LOG_STREAMS allows \(4\)/);
      expect(h.app.berthCounters.logStreams()).toBe(4);

      open.shift()?.abort();
      await waitFor(
        "the closed stream's slot to be freed",
        async () => h.app.berthCounters.logStreams("a"),
        (n) => n === 2,
      );
      expect((await follow(tb.id, B)).status).toBe(200);
    } finally {
      for (const ac of open) ac.abort();
    }
  });
});

describe("stalled followers, in process", () => {
  let h: Harness;
  let readers: StalledReaders | undefined;

  beforeAll(async () => {
    h = await startHarness({
      BERTH_API_KEYS: KEYS,
      BERTH_TENANT_MAX_LOG_STREAMS: "200",
      BERTH_MAX_LOG_STREAMS: "300",
      BERTH_RATE_LIMIT_PER_MINUTE: "0",
    });
  });

  afterAll(async () => {
    await readers?.close();
    const left = h ? await h.leftoverContainers() : [];
    await h?.close();
    expect(left).toEqual([]);
  });

  it("serves another tenant while 150 readers stall, never reading more than the bound at once nor for a client that does not drain", async () => {
    const big = await h.waitFinished((await h.submit(TEN_MIB_TASK, A)).id, 120_000, A);
    expect(big.status).toBe("succeeded");
    readers = await startStalledReaders({ url: h.url, path: `/v1/tasks/${big.id}/logs`, authorization: A.authorization, count: 150 });
    await waitFor(
      "all 150 streams to be open",
      async () => h.app.berthCounters.logStreams("a"),
      (n) => n === 150,
    );

    // Another tenant, while the stalled streams are open.
    for (let i = 0; i < 10; i++) expect((await h.request("GET", "/v1/tasks", undefined, B)).statusCode).toBe(200);
    const small = await h.waitFinished((await h.submit({ command: ["echo", "fine"] }, B)).id, 60_000, B);
    expect(small.status).toBe("succeeded");
    expect((await h.request("GET", `/v1/tasks/${small.id}/logs`, undefined, B)).body).toBe("fine\n");

    // Every stalled stream has taken what its socket would take, and nothing more is read for any of them.
    const settled = await logReadsSettled(h);
    expect(settled.peakActive).toBeGreaterThan(0);
    expect(settled.peakActive).toBeLessThanOrEqual(LOG_READS_AT_ONCE);
    // A stalled stream is read no further than its socket takes: the kernel's largest send buffer (tcp_wmem) and
    // this server's own unsent bytes, in entries of 64 KiB (one read each at most). The whole log would be ~160.
    const [, , wmemMax] = (await readFile("/proc/sys/net/ipv4/tcp_wmem", "utf8")).trim().split(/\s+/).map(Number) as number[];
    const perStream = Math.ceil(((wmemMax as number) + 2 * MAX_BUFFERED_BYTES) / (64 * 1024)) + 2;
    expect(perStream).toBeLessThan(120);
    expect(settled.reads).toBeLessThan(150 * perStream);
    expect(h.app.berthCounters.logStreams("a")).toBe(150);
  }, 300_000);
});

/** Peak and current resident memory of a process, from /proc/<pid>/status, in bytes. */
async function memoryOf(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** CPU time a process has used, in clock ticks (utime + stime of /proc/<pid>/stat). */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

describe("500 stalled followers against a server process", () => {
  let s: ServerProcess;
  let readers: StalledReaders | undefined;

  beforeAll(async () => {
    s = await spawnServer({
      BERTH_API_KEYS: KEYS,
      BERTH_TENANT_MAX_LOG_STREAMS: "500",
      BERTH_RATE_LIMIT_PER_MINUTE: "0",
      LOG_LEVEL: "warn",
    });
  });

  afterAll(async () => {
    await readers?.close();
    await s?.cleanup();
  });

  const call = async (method: "GET" | "POST", path: string, headers: Record<string, string>, body?: unknown) => {
    const res = await fetch(`${s.url}${path}`, {
      method,
      headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  it("keeps another tenant served and its own memory bounded while 500 readers with tiny receive buffers stall", async () => {
    const pid = s.proc.pid as number;
    const submitted = await call("POST", "/v1/tasks", A, TEN_MIB_TASK);
    const big = await call("GET", `/v1/tasks/${submitted.json.id}?waitSeconds=60`, A);
    expect(big.json.status).toBe("succeeded");
    const idle = await memoryOf(pid);

    readers = await startStalledReaders({ url: s.url, path: `/v1/tasks/${big.json.id}/logs`, authorization: A.authorization, count: 500 });
    // The 501st stream is refused only once all 500 are open.
    await waitFor(
      "all 500 streams to be open",
      async () => (await fetch(`${s.url}/v1/tasks/${big.json.id}/logs`, { headers: { ...SSE_HEADERS, ...A } })).status,
      (status) => status === 429,
      { timeoutMs: 120_000 },
    );

    // Another tenant's requests are answered while the 500 are connected.
    for (let i = 0; i < 20; i++) expect((await call("GET", "/v1/tasks", B)).status).toBe(200);
    const t = await call("POST", "/v1/tasks", B, { command: ["echo", "still here"] });
    expect(t.status).toBe(202);
    expect((await call("GET", `/v1/tasks/${t.json.id}?waitSeconds=60`, B)).json.status).toBe("succeeded");

    // Once the server has written what the stalled sockets take, it goes quiet, and its peak memory stayed bounded.
    let before = await cpuTicks(pid);
    await waitFor(
      "the server to go quiet",
      async () => {
        const now = await cpuTicks(pid);
        const used = now - before;
        before = now;
        return used;
      },
      (ticks) => ticks <= 5, // at most 50 ms of CPU in the last second
      { intervalMs: 1000, timeoutMs: 120_000 },
    );
    const after = await memoryOf(pid);
    // Measured: ~150 MB idle, ~300 MB at peak. Without the bounds the same attack took 1.2-1.7 GB.
    expect(after.peak).toBeLessThan(idle.rss + 400 * MB);
    expect((await call("GET", "/v1/tasks", B)).status).toBe(200);
  }, 400_000);
});
