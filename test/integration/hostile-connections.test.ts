// Hostile connections (issue 16, items 3 and 4): rate limits that a different spelling of the key cannot dodge,
// failed authentications limited per client address, requests that must arrive in time (streams and long polls
// excepted), and caps on connections per address and in all. Each loopback address (127.0.0.x) is one client.
import { startHarness, type Harness } from "../helpers/harness.js";
import { rawConnect, rawRequest, type RawConnection } from "../helpers/raw-http.js";
import { collectSse, endEvents } from "../helpers/sse.js";
import { waitFor } from "../helpers/wait-for.js";

const KEY_A = "tenant-a-key-00000001";
const KEY_B = "tenant-b-key-00000001";
const KEYS = `a:${KEY_A},b:${KEY_B}`;

describe("rate limits and failed authentications", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(
      { BERTH_API_KEYS: KEYS, BERTH_RATE_LIMIT_PER_MINUTE: "30", BERTH_AUTH_FAILURES_PER_MINUTE: "5" },
      { worker: false },
    );
  });

  afterAll(async () => {
    await h?.close();
  });

  it("counts a tenant's requests however its key is spelled", async () => {
    const spellings = [
      `Bearer ${KEY_A}`,
      `bearer ${KEY_A}`,
      `BEARER ${KEY_A}`,
      `Bearer    ${KEY_A}`,
      `Bearer\t${KEY_A}`,
      `Bearer\u00a0${KEY_A}`,
    ];
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const authorization = spellings[i % spellings.length] as string;
      statuses.push((await rawRequest(h.url, { path: "/v1/tasks", headers: { authorization }, from: "127.0.0.2" })).status);
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(30);
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
    const limited = await rawRequest(h.url, { path: "/v1/tasks", headers: { authorization: `bEaReR ${KEY_A}` }, from: "127.0.0.9" });
    expect(limited.status).toBe(429);
    expect(limited.json().error.code).toBe("rate_limited");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    // Another tenant, from the same address, is not affected.
    const other = await rawRequest(h.url, {
      path: "/v1/tasks",
      headers: { authorization: "Bearer tenant-b-key-00000001" },
      from: "127.0.0.2",
    });
    expect(other.status).toBe(200);
  });

  it("answers 429 to an address after too many failed authentications, even with a valid key, and to no one else", async () => {
    const wrong = (from: string, authorization?: string) =>
      rawRequest(h.url, { path: "/v1/tasks", headers: authorization ? { authorization } : {}, from });
    for (let i = 0; i < 5; i++) expect((await wrong("127.0.0.3", `Bearer wrong-key-${i}-xxxxxxxx`)).status).toBe(401);
    const blocked = await wrong("127.0.0.3", "Bearer wrong-key-again-xxxxxxxx");
    expect(blocked.status).toBe(429);
    expect(blocked.json().error).toMatchObject({ code: "rate_limited" });
    expect(blocked.json().error.message).toMatch(/BERTH_AUTH_FAILURES_PER_MINUTE/);
    expect(Number(blocked.headers["retry-after"])).toBeGreaterThan(0);
    // Guessing on is pointless: the right key is not even checked from that address...
    expect((await wrong("127.0.0.3", `Bearer ${KEY_B}`)).status).toBe(429);
    // ...while other addresses, and unauthenticated routes, are served.
    expect((await wrong("127.0.0.4", `Bearer ${KEY_B}`)).status).toBe(200);
    expect((await rawRequest(h.url, { path: "/healthz", from: "127.0.0.3" })).status).toBe(200);
    // Requests without any key count as failures too.
    for (let i = 0; i < 5; i++) expect((await wrong("127.0.0.5")).status).toBe(401);
    expect((await wrong("127.0.0.5")).status).toBe(429);
  });
});

describe("requests that arrive too slowly", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ BERTH_REQUEST_TIMEOUT_SECONDS: "2" });
  });

  afterAll(async () => {
    const left = h ? await h.leftoverContainers() : [];
    await h?.close();
    expect(left).toEqual([]);
  });

  it("closes slow bodies and slow headers with 408, while SSE streams and long polls outlast the timeout", async () => {
    const t = await h.submit({ command: ["sh", "-c", "sleep 5; echo done"] });
    const stream = collectSse(`${h.url}/v1/tasks/${t.id}/logs`);
    const poll = rawRequest(h.url, { path: `/v1/tasks/${t.id}?waitSeconds=30` });

    // 15 bodies and 5 header blocks, one byte every 500 ms for as long as the server listens.
    const slow: { c: RawConnection; byte: string }[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await rawConnect(h.url);
      if (i < 15) {
        c.socket.write("POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n");
        slow.push({ c, byte: " " });
      } else {
        c.socket.write("GET /v1/tasks HTTP/1.1\r\nHost: x\r\n");
        slow.push({ c, byte: "x" });
      }
    }
    const drip = setInterval(() => {
      for (const { c, byte } of slow) if (!c.isClosed() && c.received() === "") c.socket.write(byte);
    }, 500);
    try {
      await waitFor(
        "every slow connection to be closed by the server",
        async () => slow.filter(({ c }) => !c.isClosed()).length,
        (open) => open === 0,
        { timeoutMs: 30_000 },
      );
    } finally {
      clearInterval(drip);
    }
    for (const { c } of slow) {
      expect(c.received()).toMatch(/^HTTP\/1\.1 408 /);
      expect(c.received()).toContain('"code":"request_timeout"');
    }

    const done = await poll;
    expect(done.status).toBe(200);
    expect(JSON.parse(done.body).status).toBe("succeeded");
    const events = (await stream).events;
    expect(JSON.parse(endEvents(events)[0]?.data ?? "null")).toEqual({ status: "succeeded", exitCode: 0 });
  }, 60_000);
});

describe("connections per address and in all", () => {
  let h: Harness;
  const held: RawConnection[] = [];

  beforeAll(async () => {
    h = await startHarness({ BERTH_MAX_CONNECTIONS: "8", BERTH_MAX_CONNECTIONS_PER_ADDRESS: "5" }, { worker: false });
  });

  afterAll(async () => {
    for (const c of held) c.socket.destroy();
    await h?.close();
  });

  const hold = async (from: string, n: number) => {
    for (let i = 0; i < n; i++) held.push(await rawConnect(h.url, from));
  };
  const counted = (address?: string) => h.app.berthCounters.connections(address);

  it("answers 429 on connections past an address's cap or the server's, and serves again once they close", async () => {
    await hold("127.0.0.5", 5);
    await waitFor(
      "5 connections from 127.0.0.5",
      async () => counted("127.0.0.5"),
      (n) => n === 5,
    );
    const perAddress = await rawRequest(h.url, { path: "/healthz", from: "127.0.0.5" });
    expect(perAddress.status).toBe(429);
    expect(perAddress.json().error.code).toBe("too_many_connections");
    expect(perAddress.json().error.message).toMatch(/BERTH_MAX_CONNECTIONS_PER_ADDRESS allows \(5\)/);
    expect(Number(perAddress.headers["retry-after"])).toBeGreaterThan(0);
    expect((await rawRequest(h.url, { path: "/healthz", from: "127.0.0.6" })).status).toBe(200);

    await hold("127.0.0.6", 3);
    await waitFor(
      "8 connections in all",
      async () => counted(),
      (n) => n === 8,
    );
    const total = await rawRequest(h.url, { path: "/healthz", from: "127.0.0.7" });
    expect(total.status).toBe(429);
    expect(total.json().error.message).toMatch(/BERTH_MAX_CONNECTIONS allows \(8\)/);

    // A refused connection that sends nothing is closed, not kept.
    const silent = await rawConnect(h.url, "127.0.0.7");
    await silent.closed;

    for (const c of held.splice(0)) c.socket.destroy();
    await waitFor(
      "the held connections to be gone",
      async () => counted(),
      (n) => n === 0,
    );
    expect((await rawRequest(h.url, { path: "/healthz", from: "127.0.0.5" })).status).toBe(200);
  });
});
