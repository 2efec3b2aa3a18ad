// The pure parts of admin keys and the audit trail: which requests are audited as what (api/audit-hook.ts), how an
// admin's list merges tenants' pages (api/merge-pages.ts), key ids, and the audit queue's bounds when Redis fails
// (api/audit.ts, with a store that fails on purpose: the proof against Redis is test/e2e/audit.test.ts).
import { pino } from "pino";
import { Writable } from "node:stream";
import { AuditTrail, MAX_QUEUED } from "../../src/api/audit.js";
import { auditAction, outcomeOf } from "../../src/api/audit-hook.js";
import { keyIdOf } from "../../src/api/auth.js";
import { mergePages } from "../../src/api/merge-pages.js";
import type { AuditStore, NewAuditEntry } from "../../src/store/audit-store.js";
import { waitFor } from "../helpers/wait-for.js";

describe("auditAction", () => {
  it("a tenant's writes, downloads and file reads; never its other reads", () => {
    expect(auditAction("POST", "/v1/tasks", "tenant")).toBe("submit");
    expect(auditAction("POST", "/v1/tasks/:id/cancel", "tenant")).toBe("cancel");
    expect(auditAction("DELETE", "/v1/tasks/:id", "tenant")).toBe("delete");
    expect(auditAction("GET", "/v1/tasks/:id/archive", "tenant")).toBe("archive_download");
    expect(auditAction("GET", "/v1/tasks/:id/files/*", "tenant")).toBe("file_read");
    for (const route of ["/v1/tasks", "/v1/tasks/:id", "/v1/tasks/:id/logs", "/v1/tasks/:id/files", "/v1/usage", "/v1/audit", "/v1/info"])
      expect(auditAction("GET", route, "tenant")).toBeNull();
  });

  it("every request of an admin key, and every failed authentication", () => {
    expect(auditAction("DELETE", "/v1/tasks/:id", "admin")).toBe("delete");
    expect(auditAction("GET", "/v1/tasks", "admin")).toBe("admin_task_list");
    expect(auditAction("GET", "/v1/tasks/:id/logs", "admin")).toBe("admin_log_read");
    expect(auditAction("GET", "/v1/audit", "admin")).toBe("admin_audit_read");
    expect(auditAction("GET", "/v1/info", "admin")).toBe("admin_request");
    expect(auditAction("GET", "/v1/tasks", "unknown")).toBe("auth_failure");
    expect(auditAction("POST", "/v1/tasks", "unknown")).toBe("auth_failure");
  });

  it("outcomes from statuses", () => {
    expect([200, 202, 204, 206, 304].map(outcomeOf)).toEqual(["ok", "ok", "ok", "ok", "ok"]);
    expect([401, 403].map(outcomeOf)).toEqual(["denied", "denied"]);
    expect([400, 404, 409, 429, 500, 503].map(outcomeOf)).toEqual(["failed", "failed", "failed", "failed", "failed", "failed"]);
  });

  it("key ids are a short hash: the same for the same key, never the key", () => {
    expect(keyIdOf("acme-key-0001")).toMatch(/^[0-9a-f]{12}$/);
    expect(keyIdOf("acme-key-0001")).toBe(keyIdOf("acme-key-0001"));
    expect(keyIdOf("acme-key-0002")).not.toBe(keyIdOf("acme-key-0001"));
  });
});

describe("mergePages", () => {
  const m = (t: number, id: string) => `${String(t).padStart(15, "0")}|${id}`;
  const member = (r: string) => r;

  it("merges complete pages newest first and cuts at the limit, continuing after the last one shown", () => {
    const a = { records: [m(9, "a9"), m(5, "a5"), m(1, "a1")], nextCursor: null };
    const b = { records: [m(8, "b8"), m(2, "b2")], nextCursor: null };
    expect(mergePages([a, b], member, 10)).toEqual({
      records: [m(9, "a9"), m(8, "b8"), m(5, "a5"), m(2, "b2"), m(1, "a1")],
      nextCursor: null,
    });
    expect(mergePages([a, b], member, 3)).toEqual({ records: [m(9, "a9"), m(8, "b8"), m(5, "a5")], nextCursor: m(5, "a5") });
  });

  it("never shows what lies below a page that stopped early: it continues from the highest such cursor", () => {
    // a scanned down to 6 only (its own cursor); b is complete.
    const a = { records: [m(9, "a9")], nextCursor: m(6, "a6") };
    const b = { records: [m(8, "b8"), m(7, "b7"), m(3, "b3")], nextCursor: null };
    expect(mergePages([a, b], member, 10)).toEqual({ records: [m(9, "a9"), m(8, "b8"), m(7, "b7")], nextCursor: m(6, "a6") });
  });

  it("an empty merge of tenants with nothing more ends the list", () => {
    expect(mergePages([{ records: [], nextCursor: null }], member, 5)).toEqual({ records: [], nextCursor: null });
    expect(mergePages([], member, 5)).toEqual({ records: [], nextCursor: null });
  });
});

describe("AuditTrail", () => {
  const entry = (n: number): NewAuditEntry => ({
    time: new Date(n).toISOString(),
    action: "submit",
    tenant: "acme",
    actor: "tenant",
    keyId: "0123456789ab",
    remoteAddress: "127.0.0.1",
    requestId: `r${n}`,
    taskId: null,
    outcome: "ok",
    status: 202,
    method: "POST",
    route: "/v1/tasks",
  });
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const logger = pino({ level: "info" }, sink);

  it("logs each entry at once, never throws or waits while the store fails, keeps at most MAX_QUEUED, and writes them once it answers", async () => {
    let failing = true;
    const written: NewAuditEntry[] = [];
    const store = {
      append: async (batch: readonly NewAuditEntry[]) => {
        if (failing) throw new Error("Connection is closed.");
        written.push(...batch);
      },
    } as unknown as AuditStore;
    const trail = new AuditTrail(store, logger, 90);
    for (let i = 0; i < MAX_QUEUED + 50; i++) trail.record(entry(i));
    expect(trail.pending).toBe(MAX_QUEUED);
    expect(lines.filter((l) => l.includes('"event":"audit.submit"'))).toHaveLength(MAX_QUEUED + 50);
    expect(lines.some((l) => l.includes("audit queue full"))).toBe(true);
    await waitFor(
      "a failed write to be logged",
      async () => lines.some((l) => l.includes("could not be written to Redis")),
      (x) => x,
    );
    failing = false;
    await waitFor(
      "the queue to be written",
      async () => written.length,
      (n) => n === MAX_QUEUED,
      { timeoutMs: 10_000 },
    );
    expect(written[0]?.requestId).toBe("r50"); // the oldest 50 went (they are in the log)
    expect(trail.pending).toBe(0);
    await trail.close();
  });
});
