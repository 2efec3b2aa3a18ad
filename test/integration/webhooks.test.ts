// Signed webhooks (API.md §5): real receivers on loopback (allowed here by BERTH_WEBHOOK_ALLOW_PRIVATE), real tasks.
import { createHmac, timingSafeEqual } from "node:crypto";
import { Webhook } from "standardwebhooks";
import type { TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { PER_TENANT } from "../../src/queue/webhook-worker.js";
import { type Answer, deadUrl, type Receiver, startReceiver } from "../helpers/receiver.js";
import { waitFor } from "../helpers/wait-for.js";

const SECRET = `whsec_${Buffer.from("berth webhook test key, 32 bytes").toString("base64")}`;
const ATTEMPTS = 4;
let h: Harness;
let fallback: Receiver;
const receivers: Receiver[] = [];

beforeAll(async () => {
  // The tenant's default target must be known before berth starts.
  fallback = await startReceiver();
  h = await startHarness({
    BERTH_WEBHOOK_ALLOW_PRIVATE: "true",
    BERTH_WEBHOOK_SECRETS: `default:${SECRET}`,
    BERTH_WEBHOOKS: `default:${fallback.url}`,
    BERTH_WEBHOOK_ATTEMPTS: String(ATTEMPTS),
    BERTH_WEBHOOK_BACKOFF_MS: "100",
    BERTH_WEBHOOK_TIMEOUT_SECONDS: "2",
    BERTH_CONCURRENCY: "1",
  });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  for (const r of [fallback, ...receivers]) await r?.close();
  expect(left).toEqual([]);
});

const receiver = async (...args: Parameters<typeof startReceiver>) => {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
};

/** The task once its webhook is delivered or has failed for good. */
const webhookSettled = (id: string) =>
  waitFor(
    `the webhook of ${id} to settle`,
    () => h.get(id),
    (t) => t.webhook !== null && t.webhook.status !== "pending",
    {
      timeoutMs: 60_000,
    },
  );

/** This process's count of webhook attempts by outcome (berth_webhook_deliveries_total). */
async function deliveries(): Promise<{ delivered: number; retried: number; failed: number }> {
  const metric = await h.deps.metrics.registry.getSingleMetric("berth_webhook_deliveries_total")?.get();
  const of = (outcome: string) => metric?.values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
  return { delivered: of("delivered"), retried: of("retried"), failed: of("failed") };
}

/** Standard Webhooks, as its specification describes it: base64 HMAC-SHA256 of "id.timestamp.body" under the base64 key. */
function verifyBySpec(secret: string, headers: Record<string, string | string[] | undefined>, body: string): boolean {
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${headers["webhook-id"]}.${headers["webhook-timestamp"]}.${body}`).digest();
  return String(headers["webhook-signature"])
    .split(" ")
    .some((s) => {
      const [version, sig] = s.split(",");
      const given = Buffer.from(sig ?? "", "base64");
      return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
    });
}

describe("delivery", () => {
  it("POSTs the task view, signed so that the library's verifier and the specification both accept it", async () => {
    const r = await receiver();
    const task = await h.submit({ command: ["sh", "-c", "echo hi > out.txt"], webhook: { url: `${r.url}?ticket=7` } });
    expect(task.webhook).toEqual({ status: "pending", attempts: 0, lastError: null });
    const done = await webhookSettled(task.id);
    expect(done.status).toBe("succeeded");
    expect(done.webhook).toEqual({ status: "delivered", attempts: 1, lastError: null });

    expect(r.requests).toHaveLength(1);
    const [req] = r.requests as [(typeof r.requests)[0]];
    expect(req.path).toBe("/hook?ticket=7");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(req.headers["webhook-id"]).toBe(`msg_${task.id}_succeeded`);
    expect(Math.abs(Number(req.headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(300);
    expect(req.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const verified = new Webhook(SECRET).verify(req.body, req.headers as Record<string, string>);
    expect(verifyBySpec(SECRET, req.headers, req.body)).toBe(true);
    // Signed under another key, or with the body changed, it is refused.
    expect(() =>
      new Webhook(`whsec_${Buffer.alloc(32, 1).toString("base64")}`).verify(req.body, req.headers as Record<string, string>),
    ).toThrow();
    expect(verifyBySpec(SECRET, req.headers, req.body.replace("succeeded", "failed"))).toBe(false);

    // The body is the task view as GET shows it, less `webhook` (which describes this very delivery).
    const { webhook: _state, ...view } = await h.get(task.id);
    expect(verified).toEqual(view);
    expect(JSON.parse(req.body)).toEqual(view);
    expect(view.archive?.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("goes to the tenant's default when the task names no webhook", async () => {
    const before = fallback.requests.length;
    const task = await h.submit({ command: ["true"] });
    expect((await webhookSettled(task.id)).webhook?.status).toBe("delivered");
    const mine = fallback.requests.slice(before).filter((q) => q.headers["webhook-id"] === `msg_${task.id}_succeeded`);
    expect(mine).toHaveLength(1);
  });

  it("retries a receiver that answers 500 twice: one successful delivery, attempts 3, the same id and body each time", async () => {
    const before = await deliveries();
    const r = await receiver((n) => ({ status: n < 2 ? 500 : 200 }));
    const task = await h.submit({ command: ["sh", "-c", "exit 3"], webhook: { url: r.url } });
    const done = await webhookSettled(task.id);
    expect(done).toMatchObject({ status: "failed", exitCode: 3, webhook: { status: "delivered", attempts: 3, lastError: null } });
    expect(r.requests).toHaveLength(3);
    expect(new Set(r.requests.map((q) => q.headers["webhook-id"]))).toEqual(new Set([`msg_${task.id}_failed`]));
    expect(new Set(r.requests.map((q) => q.body)).size).toBe(1);
    for (const q of r.requests) expect(verifyBySpec(SECRET, q.headers, q.body)).toBe(true);
    expect(JSON.parse(r.requests[0]?.body ?? "{}")).toMatchObject({ id: task.id, status: "failed", exitCode: 3 });
    // The metrics count each attempt by outcome.
    const after = await deliveries();
    expect(after.retried - before.retried).toBe(2);
    expect(after.delivered - before.delivered).toBe(1);
  });

  it("times out a receiver that never answers, and ends failed with that error after every attempt", async () => {
    const r = await receiver(() => "hang");
    const task = await h.submit({ command: ["true"], webhook: { url: r.url } });
    const done = await webhookSettled(task.id);
    expect(done.status).toBe("succeeded");
    expect(done.webhook).toEqual({ status: "failed", attempts: ATTEMPTS, lastError: "no answer within 2 s" });
    expect(r.requests).toHaveLength(ATTEMPTS);
  });

  it("ends failed with the last error when the receiver is down for every attempt; the task's outcome is untouched", async () => {
    const url = await deadUrl();
    const task = await h.submit({ command: ["sh", "-c", "echo kept"], webhook: { url } });
    const done = await webhookSettled(task.id);
    expect(done).toMatchObject({ status: "succeeded", exitCode: 0, reason: null });
    expect(done.webhook).toMatchObject({ status: "failed", attempts: ATTEMPTS });
    expect(done.webhook?.lastError).toMatch(/ECONNREFUSED 127\.0\.0\.1:\d+/);
  });

  it("does not follow a redirect: the receiver's 302 fails the webhook at once", async () => {
    const elsewhere = await receiver();
    const r = await receiver(() => ({ status: 302, headers: { location: elsewhere.url } }));
    const task = await h.submit({ command: ["true"], webhook: { url: r.url } });
    const done = await webhookSettled(task.id);
    expect(done.webhook).toEqual({ status: "failed", attempts: 1, lastError: "answered 302 (redirects are not followed)" });
    expect(r.requests).toHaveLength(1);
    expect(elsewhere.requests).toHaveLength(0);
  });

  it("announces cancels: a queued task canceled by the API, and a running one stopped by its worker", async () => {
    const r = await receiver();
    const running = await h.submit({ command: ["sleep", "60"], webhook: { url: r.url } });
    await waitFor(
      "the sleeper to run",
      () => h.get(running.id),
      (t) => t.status === "running",
    );
    // BERTH_CONCURRENCY=1: this one waits behind the sleeper.
    const queued = await h.submit({ command: ["true"], webhook: { url: r.url } });
    for (const t of [queued, running]) expect((await h.request("POST", `/v1/tasks/${t.id}/cancel`)).statusCode).toBe(202);
    const ends = await Promise.all([webhookSettled(queued.id), webhookSettled(running.id)]);
    for (const t of ends) expect(t).toMatchObject({ status: "canceled", webhook: { status: "delivered", attempts: 1 } });
    const ids = r.requests.map((q) => q.headers["webhook-id"]).sort();
    expect(ids).toEqual([`msg_${queued.id}_canceled`, `msg_${running.id}_canceled`].sort());
    const bodies = r.requests.map((q) => JSON.parse(q.body) as TaskView);
    expect(bodies.map((b) => b.status)).toEqual(["canceled", "canceled"]);
  });
});

describe("refused at submit", () => {
  let strict: Harness;
  beforeAll(async () => {
    strict = await startHarness(
      { BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002", BERTH_WEBHOOK_SECRETS: `acme:${SECRET}` },
      { worker: false },
    );
  });
  afterAll(async () => {
    await strict?.close();
  });

  const ACME = { authorization: "Bearer acme-key-0001" };
  const cases: [string, string, Record<string, string>, RegExp][] = [
    ["a loopback target", "http://127.0.0.1:9/hook", ACME, /^Invalid webhook\.url: 127\.0\.0\.1 is a loopback address \(allowed only with/],
    [
      "a name that resolves to loopback",
      "http://localhost:9/hook",
      ACME,
      /^Invalid webhook\.url: localhost resolves to .* loopback address/,
    ],
    ["a private address", "https://10.0.0.8/hook", ACME, /^Invalid webhook\.url: 10\.0\.0\.8 is a private address/],
    ["the metadata service", "http://169.254.169.254/latest/meta-data", ACME, /^Invalid webhook\.url: 169\.254\.169\.254 is a metadata/],
    ["IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/", ACME, /^Invalid webhook\.url: ::ffff:7f00:1 is a loopback address/],
    ["a scheme other than http(s)", "file:///etc/passwd", ACME, /^Invalid webhook\.url: must use http or https, not file/],
    ["credentials in the URL", "https://u:p@hooks.example/", ACME, /^Invalid webhook\.url: must not carry credentials/],
    ["a host that does not exist", "https://nowhere.invalid/hook", ACME, /^Invalid webhook\.url: its host does not resolve/],
    [
      "a tenant without a signing secret",
      "https://hooks.example/",
      { authorization: "Bearer globex-key-0002" },
      /^Invalid webhook\.url: this server has no signing secret for your tenant/,
    ],
  ];
  it.each(cases)("%s: 400 naming webhook.url, nothing queued", async (_name, url, headers, message) => {
    const res = await strict.request("POST", "/v1/tasks", { command: ["true"], webhook: { url } }, headers);
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toEqual({ code: "invalid_input", message: expect.stringMatching(message) });
    const list = await strict.request("GET", "/v1/tasks", undefined, headers);
    expect(list.json().tasks).toEqual([]);
  });

  it("refuses unknown fields of webhook", async () => {
    const res = await strict.request("POST", "/v1/tasks", { command: ["true"], webhook: { url: "https://x.example/", secret: "s" } }, ACME);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/Unknown field "secret"/);
  });
});

describe("one tenant's slow receiver", () => {
  let fair: Harness;
  const ACME = { authorization: "Bearer acme-key-0001" };
  const GLOBEX = { authorization: "Bearer globex-key-0002" };
  beforeAll(async () => {
    fair = await startHarness({
      BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002",
      BERTH_WEBHOOK_ALLOW_PRIVATE: "true",
      BERTH_WEBHOOK_SECRETS: `acme:${SECRET},globex:${SECRET}`,
      BERTH_WEBHOOK_TIMEOUT_SECONDS: "60",
    });
  });
  afterAll(async () => {
    const left = fair ? await fair.leftoverContainers() : [];
    await fair?.close();
    expect(left).toEqual([]);
  });

  it("holds at most PER_TENANT delivery slots, and another tenant's webhook goes meanwhile", async () => {
    let release: () => void = () => undefined;
    const released = new Promise<Answer>((resolve) => {
      release = () => resolve({ status: 204 });
    });
    const slow = await receiver(() => released);
    const quick = await receiver();
    const acme = await Promise.all(
      Array.from({ length: 2 * PER_TENANT }, () => fair.submit({ command: ["true"], webhook: { url: slow.url } }, ACME)),
    );
    for (const t of acme) await fair.waitFinished(t.id, 60_000, ACME);
    await waitFor(
      "acme's receiver to hold its share",
      async () => slow.open.now,
      (n) => n === PER_TENANT,
    );

    const globex = await fair.submit({ command: ["true"], webhook: { url: quick.url } }, GLOBEX);
    await waitFor(
      "globex's webhook",
      () => fair.get(globex.id, GLOBEX),
      (t) => t.webhook?.status === "delivered",
      { timeoutMs: 60_000 },
    );
    expect(slow.open.now).toBe(PER_TENANT);
    expect(slow.requests).toHaveLength(PER_TENANT);

    release();
    for (const t of acme) {
      await waitFor(
        `acme's webhook of ${t.id}`,
        () => fair.get(t.id, ACME),
        (v) => v.webhook?.status === "delivered",
        { timeoutMs: 60_000 },
      );
    }
    expect(slow.requests).toHaveLength(2 * PER_TENANT);
    expect(slow.open.max).toBe(PER_TENANT);
  });
});
