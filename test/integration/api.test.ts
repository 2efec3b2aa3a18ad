// HTTP contract: authentication, tenants, validation, listing, long polls, health (shared/API.md §3).
import { jest } from "@jest/globals";
import { startHarness, type Harness } from "../helpers/harness.js";
import { startGatedTask } from "../helpers/gated-task.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME = { authorization: "Bearer acme-key-0001" };
const GLOBEX = { authorization: "Bearer globex-key-0002" };
let h: Harness;

beforeAll(async () => {
  // Open long polls re-read their task only every 10 minutes here, beyond the longest poll (60 s): a poll that
  // answers with the task's end before its wait ran out was woken by the end's announcement.
  h = await startHarness(
    { BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002", BERTH_MAX_BODY_BYTES: "65536" },
    { waitRecheckMs: 600_000 },
  );
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

const call = (method: "GET" | "POST" | "DELETE", url: string, body?: unknown, headers: Record<string, string> = ACME) =>
  h.request(method, url, body, headers);

const gatedTask = () => startGatedTask(h, ACME, { timeoutSeconds: 300 });

async function queuedJobs(): Promise<number> {
  const c = await h.services.queue.counts();
  return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) + (c.completed ?? 0) + (c.failed ?? 0);
}

describe("authentication and tenants", () => {
  it("answers 401 without a key or with a wrong one", async () => {
    const variants: Record<string, string>[] = [{}, { authorization: "Bearer nope-nope-nope" }, { authorization: "Basic abc" }];
    for (const headers of variants) {
      const res = await call("GET", "/v1/tasks", undefined, headers);
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe("unauthorized");
    }
  });

  it("hides another tenant's task exactly like a missing one", async () => {
    const t = await h.submit({ command: ["true"] }, ACME);
    const theirs = await call("GET", `/v1/tasks/${t.id}`, undefined, GLOBEX);
    const missing = await call("GET", "/v1/tasks/doesnotexist123", undefined, GLOBEX);
    expect(theirs.statusCode).toBe(404);
    expect(missing.statusCode).toBe(404);
    expect(theirs.json().error.code).toBe(missing.json().error.code);
    for (const sub of ["logs", "archive", "files"]) {
      expect((await call("GET", `/v1/tasks/${t.id}/${sub}`, undefined, GLOBEX)).statusCode).toBe(404);
    }
    expect((await call("POST", `/v1/tasks/${t.id}/cancel`, undefined, GLOBEX)).statusCode).toBe(404);
    const list = await call("GET", "/v1/tasks", undefined, GLOBEX);
    expect(list.json().tasks.map((x: { id: string }) => x.id)).not.toContain(t.id);
    await h.waitFinished(t.id, 60_000, ACME);
  });
});

describe("validation: 400 with a code and message, and nothing queued", () => {
  const cases: [string, unknown, RegExp][] = [
    ["no command", {}, /command/],
    ["an empty command", { command: [] }, /command/],
    ["a command that is not strings", { command: ["echo", 1] }, /command/],
    ["257 arguments", { command: Array.from({ length: 257 }, () => "x") }, /command/],
    ["an unknown field", { command: ["true"], colour: "red" }, /Unknown field "colour"/],
    ["an image outside the allowlist", { command: ["true"], image: "alpine:latest" }, /image.*BERTH_ALLOWED_IMAGES/],
    ["an absolute file path", { command: ["true"], files: { "/etc/x": "a" } }, /files/],
    ["a file path with ..", { command: ["true"], files: { "a/../../x": "a" } }, /files/],
    ["a bad env name", { command: ["true"], env: { "1BAD": "x" } }, /env/],
    ["a network other than none/bridge", { command: ["true"], network: "host" }, /network/],
    ["bridge when not allowed", { command: ["true"], network: "bridge" }, /BERTH_ALLOW_NETWORK/],
    ["a timeout above the maximum", { command: ["true"], timeoutSeconds: 999_999 }, /timeoutSeconds.*BERTH_MAX_TASK_TIMEOUT_SECONDS/],
    ["a ttl above the maximum", { command: ["true"], ttlSeconds: 99_999_999 }, /ttlSeconds/],
    ["memory above the maximum", { command: ["true"], limits: { memoryMb: 999_999 } }, /limits.memoryMb/],
    ["an unknown limit", { command: ["true"], limits: { gpus: 1 } }, /gpus/],
    ["a body that is not an object", ["true"], /JSON object/],
  ];
  it.each(cases)("refuses %s", async (_name, body, message) => {
    const before = await queuedJobs();
    const res = await call("POST", "/v1/tasks", body);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("invalid_input");
    expect(res.json().error.message).toMatch(message);
    expect(await queuedJobs()).toBe(before);
  });

  it("refuses malformed JSON with 400", async () => {
    const res = await call("POST", "/v1/tasks", "{nope", { ...ACME, "content-type": "application/json" });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe("invalid_input");
  });

  it("refuses an oversized body with 413 too_large", async () => {
    const res = await call("POST", "/v1/tasks", { command: ["true"], files: { "big.txt": "x".repeat(100_000) } });
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe("too_large");
  });
});

describe("listing", () => {
  it("lists newest first, filters by status and label, and pages with a cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await h.submit({ command: ["sh", "-c", `exit ${i % 2}`], labels: { batch: "list-test", n: String(i) } }, GLOBEX)).id);
    for (const id of ids) await h.waitFinished(id, 60_000, GLOBEX);

    const all = (await call("GET", "/v1/tasks?label=batch:list-test", undefined, GLOBEX)).json();
    expect(all.tasks.map((t: { id: string }) => t.id)).toEqual([...ids].reverse());

    const failed = (await call("GET", "/v1/tasks?label=batch:list-test&status=failed", undefined, GLOBEX)).json();
    expect(failed.tasks.map((t: { id: string }) => t.id)).toEqual([ids[3], ids[1]]);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { tasks: { id: string }[]; nextCursor: string | null } = (
        await call("GET", `/v1/tasks?label=batch:list-test&limit=2${cursor ? `&cursor=${cursor}` : ""}`, undefined, GLOBEX)
      ).json();
      expect(page.tasks.length).toBeLessThanOrEqual(2);
      seen.push(...page.tasks.map((t) => t.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    expect((await call("GET", "/v1/tasks?status=bogus", undefined, GLOBEX)).statusCode).toBe(400);
    expect((await call("GET", "/v1/tasks?limit=0", undefined, GLOBEX)).statusCode).toBe(400);
    expect((await call("GET", "/v1/tasks?cursor=garbage", undefined, GLOBEX)).statusCode).toBe(400);
  });
});

describe("ids and states", () => {
  it("answers 404 for ids that are malformed or try to traverse", async () => {
    for (const id of ["..", "%2e%2e", "a:b", "x".repeat(300), "short"]) {
      const res = await call("GET", `/v1/tasks/${id}`);
      expect(res.statusCode).toBe(404);
      expect(res.json().error.code).toBe("not_found");
    }
  });

  it("answers 409 archive_not_ready while the task has no archive", async () => {
    const { task: t, finish } = await gatedTask();
    try {
      const res = await call("GET", `/v1/tasks/${t.id}/archive`);
      expect(res.statusCode).toBe(409);
      expect(res.json().error.code).toBe("archive_not_ready");
    } finally {
      await finish();
    }
    expect((await h.waitFinished(t.id, 60_000, ACME)).status).toBe("succeeded");
  });

  it("returns the same task for the same idempotency key", async () => {
    const first = await call("POST", "/v1/tasks", { command: ["true"], idempotencyKey: "job-42" });
    const again = await call("POST", "/v1/tasks", { command: ["true"] }, { ...ACME, "idempotency-key": "job-42" });
    const otherTenant = await call("POST", "/v1/tasks", { command: ["true"], idempotencyKey: "job-42" }, GLOBEX);
    expect(first.statusCode).toBe(202);
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(first.json().id);
    expect(otherTenant.statusCode).toBe(202);
    expect(otherTenant.json().id).not.toBe(first.json().id);
  });
});

describe("long polling a task's end (?waitSeconds)", () => {
  /**
   * Runs `body` while recording what the long-poll waiter's reads of `taskId` found (final or not), in order. With
   * re-reads out of reach here, a read after the first one was made because the task's end was announced.
   */
  async function recordingReads<T>(taskId: string, body: (found: boolean[]) => Promise<T>): Promise<T> {
    const found: boolean[] = [];
    const until = h.waiter.until.bind(h.waiter);
    const spy = jest.spyOn(h.waiter, "until").mockImplementation((id, ms, signal, isFinal) =>
      until(id, ms, signal, async () => {
        const final = await isFinal();
        if (id === taskId) found.push(final);
        return final;
      }),
    );
    try {
      return await body(found);
    } finally {
      spy.mockRestore();
    }
  }

  it("answers the moment the task ends, woken by its end, with its final view", async () => {
    const { task: t, finish } = await gatedTask();
    await recordingReads(t.id, async (found) => {
      const poll = call("GET", `/v1/tasks/${t.id}?waitSeconds=60`);
      try {
        // The poll's own first read of the task went out as it registered, before the task may end.
        await waitFor(
          "the long poll to wait",
          async () => h.waiter.openPolls(t.id),
          (n) => n === 1,
        );
      } finally {
        await finish();
      }
      const res = await poll;
      expect(res.statusCode).toBe(200);
      expect(res.json().status).toBe("succeeded");
      expect(res.json().archive).not.toBeNull();
      // Read as it registered (running), then again when the end was announced (final), and answered then; a poll
      // left to its 60 s would show only the first read.
      expect(found).toEqual([false, true]);
      expect(h.waiter.openPolls(t.id)).toBe(0);
    });
  }, 120_000);

  it("answers with the current view once the wait has passed, and wakes on a cancel", async () => {
    const t = await h.submit({ command: ["sleep", "600"] }, ACME);
    await recordingReads(t.id, async (found) => {
      const still = await call("GET", `/v1/tasks/${t.id}?waitSeconds=1`);
      expect(["queued", "running"]).toContain(still.json().status);
      // It did wait: one read as the poll registered, then its second ran out with the task still running.
      expect(found).toEqual([false]);
      expect(h.waiter.openPolls(t.id)).toBe(0);
    });
    await recordingReads(t.id, async (found) => {
      const waiting = call("GET", `/v1/tasks/${t.id}?waitSeconds=60`);
      await waitFor(
        "the long poll to wait",
        async () => h.waiter.openPolls(t.id),
        (n) => n === 1,
      );
      expect((await call("POST", `/v1/tasks/${t.id}/cancel`)).statusCode).toBe(202);
      const ended = await waiting;
      expect(ended.statusCode).toBe(200);
      expect(ended.json().status).toBe("canceled");
      expect(found).toEqual([false, true]); // woken by the cancel's announcement
    });
  }, 120_000);

  it("refuses a waitSeconds that is not a whole number from 0 to 60, and hides other tenants' tasks", async () => {
    const t = await h.submit({ command: ["true"] }, ACME);
    for (const bad of ["-1", "61", "abc", "1.5", ""]) {
      const res = await call("GET", `/v1/tasks/${t.id}?waitSeconds=${bad}`);
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toMatch(/waitSeconds/);
    }
    expect((await call("GET", `/v1/tasks/${t.id}?waitSeconds=5`, undefined, GLOBEX)).statusCode).toBe(404);
    expect((await call("GET", `/v1/tasks/${t.id}?waitSeconds=0`)).json().id).toBe(t.id);
  });
});

describe("health", () => {
  it("answers /healthz and /readyz", async () => {
    expect((await call("GET", "/healthz")).statusCode).toBe(200);
    const ready = await call("GET", "/readyz");
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({ redis: "ok", docker: "ok" });
  });
});
