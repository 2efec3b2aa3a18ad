// Admin keys (BERTH_ADMIN_KEYS) against tenant keys on every route: an admin sees, cancels and deletes every
// tenant's tasks and reads every tenant's usage and audit trail; a tenant still gets 404 for anything not its own.
// Real engine, Redis and disk.
import type { AuditPage, ServerInfo, TaskView, TenantUsage } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { startGatedTask } from "../helpers/gated-task.js";
import { openSse } from "../helpers/sse.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME = { authorization: "Bearer acme-key-0001" };
const GLOBEX = { authorization: "Bearer globex-key-0002" };
const ADMIN = { authorization: "Bearer admin-key-0000000001" };
let h: Harness;
let acmeTask: TaskView;
let globexTask: TaskView;

beforeAll(async () => {
  h = await startHarness({ BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002", BERTH_ADMIN_KEYS: "admin-key-0000000001" });
  acmeTask = await h.submit({ command: ["sh", "-c", "echo acme > out.txt; echo acme-log"] }, ACME);
  globexTask = await h.submit({ command: ["sh", "-c", "echo globex > out.txt; echo globex-log"] }, GLOBEX);
  await h.waitFinished(acmeTask.id, 60_000, ACME);
  await h.waitFinished(globexTask.id, 60_000, GLOBEX);
}, 120_000);

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

const call = (method: "GET" | "POST" | "DELETE", url: string, headers: Record<string, string>, body?: unknown) =>
  h.request(method, url, body, headers);
const ids = (res: { json(): { tasks: { id: string }[] } }) => res.json().tasks.map((t) => t.id);

const gated = (headers: Record<string, string>) => startGatedTask(h, headers);

it("GET /v1/info says who the key is; an admin key submits nothing", async () => {
  expect((await call("GET", "/v1/info", ACME)).json()).toMatchObject({ tenant: "acme", admin: false } satisfies Partial<ServerInfo>);
  expect((await call("GET", "/v1/info", ACME)).json()).not.toHaveProperty("tenants");
  expect((await call("GET", "/v1/info", ADMIN)).json()).toMatchObject({ tenant: null, admin: true, tenants: ["acme", "globex"] });
  const submit = await call("POST", "/v1/tasks", ADMIN, { command: ["true"] });
  expect(submit.statusCode).toBe(403);
  expect(submit.json().error.code).toBe("forbidden");
});

it("reads: an admin any tenant's task and its logs, archive and files; a tenant only its own", async () => {
  for (const [t, owner, other] of [
    [acmeTask, ACME, GLOBEX],
    [globexTask, GLOBEX, ACME],
  ] as const) {
    for (const sub of ["", "/logs", "/archive", "/files", "/files/out.txt"]) {
      const url = `/v1/tasks/${t.id}${sub}`;
      const [byOwner, byAdmin, byOther] = await Promise.all([call("GET", url, owner), call("GET", url, ADMIN), call("GET", url, other)]);
      expect([url, byOwner.statusCode]).toEqual([url, 200]);
      expect([url, byAdmin.statusCode]).toEqual([url, 200]);
      expect(byAdmin.raw.equals(byOwner.raw) || sub === "").toBe(true);
      expect([url, byOther.statusCode, byOther.json().error.code]).toEqual([url, 404, "not_found"]);
    }
    expect((await call("GET", `/v1/tasks/${t.id}`, ADMIN)).json()).toMatchObject({ id: t.id, tenant: t.tenant });
  }
});

it("lists: an admin every tenant's tasks (merged newest first, paged) or one tenant's; a tenant naming another gets 404", async () => {
  const all = await call("GET", "/v1/tasks", ADMIN);
  expect(ids(all)).toEqual(expect.arrayContaining([acmeTask.id, globexTask.id]));
  const created = all.json().tasks.map((t: TaskView) => t.createdAt);
  expect(created).toEqual([...created].sort().reverse());
  // Page by page, one at a time, through both tenants: every task once, in order.
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page = (await call("GET", `/v1/tasks?limit=1${cursor ? `&cursor=${cursor}` : ""}`, ADMIN)).json();
    seen.push(...page.tasks.map((t: TaskView) => t.id));
    cursor = page.nextCursor;
  } while (cursor);
  expect(seen).toEqual(ids(all));

  expect(ids(await call("GET", "/v1/tasks?tenant=acme", ADMIN))).toEqual(expect.arrayContaining([acmeTask.id]));
  expect(ids(await call("GET", "/v1/tasks?tenant=acme", ADMIN))).not.toContain(globexTask.id);
  expect(ids(await call("GET", "/v1/tasks?tenant=acme", ACME))).toContain(acmeTask.id);
  const theirs = await call("GET", "/v1/tasks?tenant=globex", ACME);
  expect([theirs.statusCode, theirs.json().error.code]).toEqual([404, "not_found"]);
  expect(ids(await call("GET", "/v1/tasks", ACME))).not.toContain(globexTask.id);
  expect((await call("GET", "/v1/tasks?tenant=no%20such!", ADMIN)).statusCode).toBe(400);
});

it("cancel and delete: an admin acts on any tenant's task, a tenant gets 404 for another's", async () => {
  const { task: running } = await gated(GLOBEX);
  expect((await call("POST", `/v1/tasks/${running.id}/cancel`, ACME)).statusCode).toBe(404);
  expect((await h.get(running.id, GLOBEX)).status).toBe("running");
  const canceled = await call("POST", `/v1/tasks/${running.id}/cancel`, ADMIN);
  expect(canceled.statusCode).toBe(202);
  expect((await h.waitFinished(running.id, 60_000, GLOBEX)).status).toBe("canceled");

  const t = await h.submit({ command: ["true"] }, ACME);
  await h.waitFinished(t.id, 60_000, ACME);
  expect((await call("DELETE", `/v1/tasks/${t.id}`, GLOBEX)).statusCode).toBe(404);
  expect((await call("DELETE", `/v1/tasks/${t.id}`, ADMIN)).statusCode).toBe(204);
  expect((await call("GET", `/v1/tasks/${t.id}`, ACME)).statusCode).toBe(404);
}, 120_000);

it("usage: an admin every tenant's or one's; a tenant its own only", async () => {
  const all = (await call("GET", "/v1/usage", ADMIN)).json() as { tenants: TenantUsage[] };
  expect(all.tenants.map((u) => u.tenant)).toEqual(["acme", "globex"]);
  expect(((await call("GET", "/v1/usage?tenant=globex", ADMIN)).json() as TenantUsage).tenant).toBe("globex");
  expect(((await call("GET", "/v1/usage", ACME)).json() as TenantUsage).tenant).toBe("acme");
  expect((await call("GET", "/v1/usage?tenant=globex", ACME)).statusCode).toBe(404);
});

it("events: an admin follows every tenant's changes (or one's), a tenant its own", async () => {
  const controller = new AbortController();
  const seen = { admin: new Set<string>(), acme: new Set<string>(), adminGlobex: new Set<string>() };
  const follow = async (url: string, headers: Record<string, string>, into: Set<string>) => {
    const { status, items } = await openSse(`${h.url}${url}`, headers, controller.signal);
    expect(status).toBe(200);
    void (async () => {
      for await (const item of items) {
        if (item.kind === "event" && item.event.event === "task") into.add((JSON.parse(item.event.data) as TaskView).id);
      }
    })().catch(() => undefined);
  };
  try {
    await follow("/v1/events", ADMIN, seen.admin);
    await follow("/v1/events", ACME, seen.acme);
    await follow("/v1/events?tenant=globex", ADMIN, seen.adminGlobex);
    const a = await h.submit({ command: ["true"] }, ACME);
    const g = await h.submit({ command: ["true"] }, GLOBEX);
    await h.waitFinished(a.id, 60_000, ACME);
    await h.waitFinished(g.id, 60_000, GLOBEX);
    await waitFor(
      "the events of both tasks",
      async () => ({ admin: [...seen.admin], acme: [...seen.acme], adminGlobex: [...seen.adminGlobex] }),
      (s) => s.admin.includes(a.id) && s.admin.includes(g.id) && s.acme.includes(a.id) && s.adminGlobex.includes(g.id),
    );
    expect(seen.acme.has(g.id)).toBe(false);
    expect(seen.adminGlobex.has(a.id)).toBe(false);
    expect((await call("GET", "/v1/events?tenant=globex", ACME)).statusCode).toBe(404);
  } finally {
    controller.abort();
  }
}, 120_000);

it("audit: an admin's actions are recorded as an admin's, in the tenant's trail the tenant reads too", async () => {
  const t = await h.submit({ command: ["true"] }, GLOBEX);
  await h.waitFinished(t.id, 60_000, GLOBEX);
  expect((await call("GET", `/v1/tasks/${t.id}/archive`, ADMIN)).statusCode).toBe(200);
  const entry = (page: AuditPage) => page.entries.find((e) => e.taskId === t.id && e.action === "archive_download");
  const globex = await waitFor(
    "globex's trail to show the admin's download",
    async () => (await call("GET", "/v1/audit", GLOBEX)).json() as AuditPage,
    (p) => entry(p) !== undefined,
  );
  expect(entry(globex)).toMatchObject({ tenant: "globex", actor: "admin", outcome: "ok", status: 200 });
  expect(globex.entries.every((e) => e.tenant === "globex")).toBe(true);
  const acme = (await call("GET", "/v1/audit", ACME)).json() as AuditPage;
  expect(acme.entries.some((e) => e.taskId === t.id)).toBe(false);
  expect(acme.entries.every((e) => e.tenant === "acme")).toBe(true);
  const admin = (await call("GET", "/v1/audit", ADMIN)).json() as AuditPage;
  expect(new Set(admin.entries.map((e) => e.tenant))).toEqual(new Set(["acme", "globex", null]));
  const onlyAcme = (await call("GET", "/v1/audit?tenant=acme", ADMIN)).json() as AuditPage;
  expect(onlyAcme.entries.length).toBeGreaterThan(0);
  expect(onlyAcme.entries.every((e) => e.tenant === "acme")).toBe(true);
  expect((await call("GET", "/v1/audit?tenant=acme", GLOBEX)).statusCode).toBe(404);
}, 120_000);
