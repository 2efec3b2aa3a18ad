// Hostile input (issue 16, items 2, 5 and 9): what a task may carry is bounded at submit, what a list returns does
// not grow with it, JSON that would block the event loop is refused while it arrives, and the smaller holes:
// file trees, framework errors, resume ids, idempotency keys, truncated logs and If-Range.
import { startHarness, type Harness } from "../helpers/harness.js";
import { rawConnect, rawRequest } from "../helpers/raw-http.js";
import { collectSse, endEvents } from "../helpers/sse.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ BERTH_MAX_OUTPUT_BYTES: "1000", BERTH_RATE_LIMIT_PER_MINUTE: "0" });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  rawRequest(h.url, { method: "POST", path, body, headers: { "content-type": "application/json", ...headers } });

describe("what a task may carry, and what a list returns", () => {
  /** Prints how many arguments it got and the length of the first. */
  const SCRIPT = 'echo "$#" "$(printf %s "$1" | wc -c)"';

  it("refuses a command too large for the kernel with 400 naming the field, and queues nothing", async () => {
    const before = (await h.request("GET", "/v1/tasks")).json().tasks.length;
    // The attack: 15.5 MB of command in arguments the old per-argument check let through.
    const huge = await h.request("POST", "/v1/tasks", { command: Array.from({ length: 155 }, () => "x".repeat(100_000)) });
    expect(huge.statusCode).toBe(400);
    expect(huge.json().error).toMatchObject({ code: "invalid_input" });
    expect(huge.json().error.message).toMatch(/^Invalid command: command and env take 15501395 bytes/);
    // Bytes, not characters: 65,536 two-byte characters are one byte over the kernel's limit for one argument.
    const wide = await h.request("POST", "/v1/tasks", { command: ["echo", "é".repeat(65_536)] });
    expect(wide.json().error.message).toMatch(/^Invalid command\.1: is 131072 bytes; the kernel takes at most 131071/);
    const many = await h.request("POST", "/v1/tasks", { command: Array.from({ length: 20 }, () => "y".repeat(120_000)) });
    expect(many.statusCode).toBe(400);
    expect(many.json().error.message).toMatch(/^Invalid command: .*ARG_MAX/);
    const engine = await h.request("POST", "/v1/tasks", { command: Array.from({ length: 15 }, () => "e".repeat(128_000)) });
    expect(engine.statusCode).toBe(400);
    expect(engine.json().error.message).toMatch(/^Invalid command: .*container engine's create request/);
    const env = await h.request("POST", "/v1/tasks", {
      command: ["true"],
      env: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`V${i}`, "z".repeat(120_000)])),
    });
    expect(env.json().error.message).toMatch(/^Invalid env: /);
    expect((await h.request("GET", "/v1/tasks")).json().tasks.length).toBe(before);
  });

  it("runs a command as large as the limit allows, and lists it in a bounded entry that says it was cut", async () => {
    // 7 arguments of 128,000 bytes: ~900 KB, as much as the engine's create request takes.
    const args = Array.from({ length: 7 }, (_, i) => String.fromCharCode(97 + i).repeat(128_000));
    const big = await h.waitFinished((await h.submit({ command: ["sh", "-c", SCRIPT, "sh", ...args] })).id, 120_000);
    expect(big).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect((await h.request("GET", `/v1/tasks/${big.id}/logs`)).body).toBe("7 128000\n");

    const list = await h.request("GET", "/v1/tasks?limit=50");
    expect(list.statusCode).toBe(200);
    const entry = list.json().tasks.find((t: { id: string }) => t.id === big.id);
    expect(entry.commandTruncated).toBe(true);
    expect(entry.command.slice(0, 4)).toEqual(["sh", "-c", SCRIPT, "sh"]);
    expect(Buffer.byteLength(JSON.stringify(entry))).toBeLessThan(4096);
    expect(list.raw.length).toBeLessThan(50 * 8192);
    // The task itself still has all of it.
    const full = (await h.request("GET", `/v1/tasks/${big.id}`)).json();
    expect(full.commandTruncated).toBe(false);
    expect(full.command).toEqual(["sh", "-c", SCRIPT, "sh", ...args]);
  }, 180_000);
});

describe("JSON that would block the event loop", () => {
  it("refuses 10 MB of nested brackets with 400 at the first level too deep, and keeps serving", async () => {
    const c = await rawConnect(h.url);
    c.socket.write(`POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${10_000_000}\r\n\r\n`);
    c.socket.write("[".repeat(64 * 1024)); // the rest is never sent: the answer must not wait for it
    await c.closed;
    expect(c.received()).toMatch(/^HTTP\/1\.1 400 /);
    expect(c.received()).toContain('"code":"invalid_input"');
    expect(c.received()).toMatch(/deeper than 32 levels/);
    expect((await h.request("GET", "/healthz")).statusCode).toBe(200);

    const wide = await post("/v1/tasks", `{"command":["true"],"labels":{${'"k":"v",'.repeat(150_000)}"k":"v"}}`);
    expect(wide.status).toBe(400);
    expect(wide.json().error.message).toMatch(/more than 100000 values/);
  });

  it("takes large bodies only on submit: other routes answer 413 past 16 KiB", async () => {
    const t = await h.submit({ command: ["true"] });
    const res = await post(`/v1/tasks/${t.id}/cancel`, JSON.stringify({ pad: "x".repeat(100_000) }));
    expect(res.status).toBe(413);
    expect(res.json().error).toMatchObject({ code: "too_large" });
    expect(res.json().error.message).toMatch(/16384 bytes/);
  });
});

describe("smaller holes", () => {
  it("refuses files given as both a file and a directory at submit, naming the field and no host path", async () => {
    const res = await h.request("POST", "/v1/tasks", { command: ["true"], files: { a: "1", "a/b": "2" } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toBe('Invalid files: "a" is given as a file and also as the directory of "a/b"; keep one of them.');
    expect(res.body).not.toContain(h.root);
  });

  it("answers framework and protocol errors in the contract's error shape", async () => {
    const shape = (body: string) => expect(JSON.parse(body)).toEqual({ error: { code: expect.any(String), message: expect.any(String) } });
    const badUrl = await rawRequest(h.url, { path: "/v1/tasks/%zz" });
    expect(badUrl.status).toBe(400);
    shape(badUrl.body);
    const headers = await rawRequest(h.url, { path: "/healthz", headers: { "x-pad": "x".repeat(20_000) } });
    expect(headers.status).toBe(431);
    expect(headers.json().error.code).toBe("headers_too_large");
    const type = await rawRequest(h.url, {
      method: "POST",
      path: "/v1/tasks",
      headers: { "content-type": "application/xml" },
      body: "<a/>",
    });
    expect(type.status).toBe(415);
    expect(type.json().error.code).toBe("unsupported_media_type");
    for (const body of ["{not json", ""]) {
      const res = await post("/v1/tasks", body);
      expect(res.status).toBe(400);
      shape(res.body);
    }
    const garbage = await rawConnect(h.url);
    garbage.socket.write("THIS IS NOT HTTP\r\n\r\n");
    await garbage.closed;
    expect(garbage.received()).toMatch(/^HTTP\/1\.1 400 /);
    shape(garbage.received().slice(garbage.received().indexOf("\r\n\r\n") + 4));
  });

  it("refuses a Last-Event-ID that is not a stream id with 400, and resumes after the largest one", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["echo", "hi"] })).id);
    for (const id of ["18446744073709551616-0", "0-18446744073709551616", "abc", "1-2-3"]) {
      const res = await rawRequest(h.url, {
        path: `/v1/tasks/${t.id}/logs`,
        headers: { accept: "text/event-stream", "last-event-id": id },
      });
      expect(res.status).toBe(400);
      expect(res.json().error.message).toMatch(/^Invalid Last-Event-ID/);
    }
    expect(
      (
        await rawRequest(h.url, {
          path: `/v1/tasks/${t.id}/logs?after=99999999999999999999999-1`,
          headers: { accept: "text/event-stream" },
        })
      ).status,
    ).toBe(400);
    const last = await collectSse(`${h.url}/v1/tasks/${t.id}/logs`, { "last-event-id": "18446744073709551615-18446744073709551615" });
    expect(last.status).toBe(200);
    expect(endEvents(last.events)).toHaveLength(1);
  });

  it("answers 422 when an idempotency key comes back with a different request, and the task when it is the same", async () => {
    const first = await h.request(
      "POST",
      "/v1/tasks",
      { command: ["echo", "one"], labels: { x: "1", y: "2" } },
      { "idempotency-key": "k-1" },
    );
    expect(first.statusCode).toBe(202);
    const same = await h.request(
      "POST",
      "/v1/tasks",
      { labels: { y: "2", x: "1" }, command: ["echo", "one"] },
      { "idempotency-key": "k-1" },
    );
    expect(same.statusCode).toBe(200);
    expect(same.json().id).toBe(first.json().id);
    const other = await h.request("POST", "/v1/tasks", { command: ["echo", "two"], idempotencyKey: "k-1" });
    expect(other.statusCode).toBe(422);
    expect(other.json().error.code).toBe("idempotency_key_reused");
    expect(other.json().error.message).toContain(first.json().id);
  });

  it("ends the plain-text log of a truncated task with a note that output was dropped", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a"] })).id);
    expect(t).toMatchObject({ status: "succeeded", outputTruncated: true });
    const text = (await h.request("GET", `/v1/tasks/${t.id}/logs`)).body;
    expect(text).toBe(`${"a".repeat(1000)}\n[berth] output passed BERTH_MAX_OUTPUT_BYTES; what the task printed after that was dropped\n`);
  });

  it("honours If-Range with the archive's own ETag, and sends it all when the ETag differs", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "head -c 100000 /dev/urandom > r.bin"] })).id);
    const etag = `"${t.archive?.sha256}"`;
    const range = { range: "bytes=10-19" };
    const resumed = await rawRequest(h.url, { path: `/v1/tasks/${t.id}/archive`, headers: { ...range, "if-range": etag } });
    expect(resumed.status).toBe(206);
    expect(resumed.headers["content-range"]).toBe(`bytes 10-19/${t.archive?.bytes}`);
    expect(resumed.headers.etag).toBe(etag);
    for (const ifRange of ['"0000"', `W/${etag}`, new Date().toUTCString()]) {
      const whole = await rawRequest(h.url, { path: `/v1/tasks/${t.id}/archive`, headers: { ...range, "if-range": ifRange } });
      expect(whole.status).toBe(200);
      expect(Number(whole.headers["content-length"])).toBe(t.archive?.bytes);
    }
  });
});
