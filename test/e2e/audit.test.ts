// The audit trail end to end, on berth as its own process (dist/cli/main.js serve, JSON logs): every submit,
// cancel, delete, archive download, file read, admin action and failed authentication is recorded with its time,
// tenant, key id, address, request id, task and outcome; readable at GET /v1/audit and with `berth audit`; written
// as `audit.<action>` log lines; and no key, right or wrong, appears anywhere in the logs, the entries or Redis.
// Also `berth usage` over HTTP: a tenant's own, an admin's every tenant's.
import { existsSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { keyIdOf } from "../../src/api/auth.js";
import type { AuditEntry, AuditPage, TaskView } from "../../src/contract/types.js";
import { httpRequest } from "../helpers/harness.js";
import { redisFor, spawnServer, type ServerProcess } from "../helpers/server-process.js";
import { namespaceKeys } from "../helpers/sweep.js";
import { waitFor } from "../helpers/wait-for.js";

const CLI = path.join(process.cwd(), "dist/cli/main.js");
const KEYS = { acme: "acme-audit-key-0001", globex: "globex-audit-key-0002", admin: "admin-audit-key-000000003" };
const WRONG = "wrong-audit-key-0009";
const auth = (key: string) => ({ authorization: `Bearer ${key}` });
let server: ServerProcess;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} was not built; run npm run build`);
  server = await spawnServer({
    BERTH_API_KEYS: `acme:${KEYS.acme},globex:${KEYS.globex}`,
    BERTH_ADMIN_KEYS: KEYS.admin,
    BERTH_LOG_FORMAT: "json",
    BERTH_RATE_LIMIT_PER_MINUTE: "0",
  });
}, 120_000);
afterAll(async () => {
  await server?.cleanup();
});

const call = (method: string, url: string, key: string | null, body?: unknown) =>
  httpRequest(server.url, method, url, body, key ? auth(key) : {});
const wait = async (id: string, key: string): Promise<TaskView> =>
  waitFor(
    `task ${id} to end`,
    async () => (await call("GET", `/v1/tasks/${id}?waitSeconds=20`, key)).json() as TaskView,
    (t) => !["queued", "running"].includes(t.status),
    { timeoutMs: 90_000 },
  );

it("records each action with who, from where, which request and task, and how it went; never a key", async () => {
  const requests: Record<string, string> = {};
  const remember = <T extends { headers: Headers; statusCode: number }>(name: string, res: T): T => {
    const id = res.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    requests[name] = id as string;
    return res;
  };

  // acme: submit, read a file, download the archive, delete.
  const submitted = remember("submit", await call("POST", "/v1/tasks", KEYS.acme, { command: ["sh", "-c", "echo audited > out.txt"] }));
  expect(submitted.statusCode).toBe(202);
  const task = submitted.json() as TaskView;
  await wait(task.id, KEYS.acme);
  expect(remember("file_read", await call("GET", `/v1/tasks/${task.id}/files/out.txt`, KEYS.acme)).statusCode).toBe(200);
  expect(remember("archive_download", await call("GET", `/v1/tasks/${task.id}/archive`, KEYS.acme)).statusCode).toBe(200);
  // globex: a running task it cancels; a file of acme's it may not read (404, recorded as globex's failed read).
  const running = (await call("POST", "/v1/tasks", KEYS.globex, { command: ["sleep", "600"] })).json() as TaskView;
  expect(remember("cancel", await call("POST", `/v1/tasks/${running.id}/cancel`, KEYS.globex)).statusCode).toBe(202);
  expect(remember("denied_read", await call("GET", `/v1/tasks/${task.id}/files/out.txt`, KEYS.globex)).statusCode).toBe(404);
  await wait(running.id, KEYS.globex);
  // The admin: lists everything, deletes globex's task.
  expect(remember("admin_list", await call("GET", "/v1/tasks", KEYS.admin)).statusCode).toBe(200);
  expect(remember("admin_delete", await call("DELETE", `/v1/tasks/${running.id}`, KEYS.admin)).statusCode).toBe(204);
  expect(remember("delete", await call("DELETE", `/v1/tasks/${task.id}`, KEYS.acme)).statusCode).toBe(204);
  // Failed authentications: a wrong key, and none.
  expect(remember("wrong_key", await call("GET", "/v1/tasks", WRONG)).statusCode).toBe(401);
  expect(remember("no_key", await call("POST", "/v1/tasks", null, { command: ["true"] })).statusCode).toBe(401);

  const byRequest = (entries: AuditEntry[]) => new Map(entries.map((e) => [e.requestId, e]));
  const all = await waitFor(
    "every action in the audit trail",
    async () => byRequest(((await call("GET", "/v1/audit?limit=1000", KEYS.admin)).json() as AuditPage).entries),
    (m) => Object.values(requests).every((id) => m.has(id)),
  );
  const at = (name: string) => all.get(requests[name] as string) as AuditEntry;
  const acmeId = keyIdOf(KEYS.acme);
  expect(at("submit")).toMatchObject({
    action: "submit",
    tenant: "acme",
    actor: "tenant",
    keyId: acmeId,
    taskId: task.id,
    outcome: "ok",
    status: 202,
  });
  expect(at("file_read")).toMatchObject({ action: "file_read", tenant: "acme", keyId: acmeId, taskId: task.id, outcome: "ok" });
  expect(at("archive_download")).toMatchObject({ action: "archive_download", tenant: "acme", taskId: task.id, outcome: "ok" });
  expect(at("cancel")).toMatchObject({ action: "cancel", tenant: "globex", keyId: keyIdOf(KEYS.globex), taskId: running.id, status: 202 });
  expect(at("denied_read")).toMatchObject({ action: "file_read", tenant: "globex", taskId: null, outcome: "failed", status: 404 });
  expect(at("admin_list")).toMatchObject({
    action: "admin_task_list",
    tenant: null,
    actor: "admin",
    keyId: keyIdOf(KEYS.admin),
    outcome: "ok",
  });
  expect(at("admin_delete")).toMatchObject({ action: "delete", tenant: "globex", actor: "admin", taskId: running.id, status: 204 });
  expect(at("delete")).toMatchObject({ action: "delete", tenant: "acme", actor: "tenant", taskId: task.id, status: 204 });
  expect(at("wrong_key")).toMatchObject({
    action: "auth_failure",
    tenant: null,
    actor: "unknown",
    keyId: keyIdOf(WRONG),
    outcome: "denied",
    status: 401,
  });
  expect(at("no_key")).toMatchObject({ action: "auth_failure", actor: "unknown", keyId: null, method: "POST", route: "/v1/tasks" });
  for (const e of all.values()) {
    expect(e.remoteAddress).toMatch(/^(::ffff:)?127\.0\.0\.1$/);
    expect(Math.abs(Date.parse(e.time) - Date.now())).toBeLessThan(10 * 60_000);
  }

  // A tenant reads its own entries only: globex sees the admin's delete of its task, not acme's actions.
  const globex = byRequest(((await call("GET", "/v1/audit", KEYS.globex)).json() as AuditPage).entries);
  expect(globex.has(requests.admin_delete as string)).toBe(true);
  expect(globex.has(requests.submit as string)).toBe(false);
  expect(globex.has(requests.wrong_key as string)).toBe(false);

  // `berth audit`, over HTTP as a client would.
  const cli = await execa("node", [CLI, "audit", "--json", "--limit", "1000"], {
    reject: false,
    env: { BERTH_URL: server.url, BERTH_API_KEY: KEYS.acme },
  });
  expect(cli.exitCode).toBe(0);
  const mine = JSON.parse(cli.stdout) as AuditEntry[];
  expect(mine.map((e) => e.requestId)).toEqual(expect.arrayContaining([requests.submit, requests.file_read, requests.delete]));
  expect(mine.every((e) => e.tenant === "acme")).toBe(true);
  const table = await execa("node", [CLI, "audit", "--tenant", "globex"], {
    reject: false,
    env: { BERTH_URL: server.url, BERTH_API_KEY: KEYS.admin },
  });
  expect(table.exitCode).toBe(0);
  expect(table.stdout).toMatch(/^TIME\s+ACTION\s+OUTCOME\s+TENANT\s+ACTOR\s+KEY\s+TASK\s+FROM\s+REQUEST$/m);
  expect(table.stdout).toMatch(new RegExp(`\\sdelete\\s+ok 204\\s+globex\\s+admin\\s+${keyIdOf(KEYS.admin)}\\s+${running.id}\\s`));

  // `berth usage`: a tenant its own (another tenant's is 404, exit 1), an admin every tenant's.
  const usage = (key: string, ...args: string[]) =>
    execa("node", [CLI, "usage", ...args], { reject: false, env: { BERTH_URL: server.url, BERTH_API_KEY: key } });
  const own = await usage(KEYS.acme, "--json");
  expect(own.exitCode).toBe(0);
  expect(JSON.parse(own.stdout)).toMatchObject({ tenant: "acme", queued: 0, running: 0, limits: { maxStoredBytes: null } });
  const theirs = await usage(KEYS.acme, "--tenant", "globex");
  expect(theirs.exitCode).toBe(1);
  expect(theirs.stderr).toContain('No tenant "globex" for this key; leave tenant out to see your own.');
  const everyone = await usage(KEYS.admin);
  expect(everyone.exitCode).toBe(0);
  expect(everyone.stdout).toMatch(/^TENANT\s+QUEUED\s+RUNNING\s+STORED BYTES\s+WORKSPACES\s+ARCHIVES\s+CACHES\s+CPU SECONDS\s+SINCE$/m);
  for (const tenant of ["acme", "globex"]) expect(everyone.stdout).toMatch(new RegExp(`^${tenant}\\s+0\\s+0\\s+\\d+\\s`, "m"));

  // The log: one audit.<action> line per entry, for log shippers.
  const lines = server
    .output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const logged = (name: string) => lines.find((l) => l.requestId === requests[name] && String(l.event).startsWith("audit."));
  expect(logged("submit")).toMatchObject({ event: "audit.submit", tenant: "acme", keyId: acmeId, taskId: task.id, outcome: "ok" });
  expect(logged("wrong_key")).toMatchObject({ event: "audit.auth_failure", actor: "unknown", outcome: "denied" });
  expect(logged("admin_delete")).toMatchObject({ event: "audit.delete", actor: "admin", tenant: "globex" });

  // No key material anywhere: the server's output, the audit entries, and every Redis value of the namespace.
  for (const key of [...Object.values(KEYS), WRONG]) {
    expect(server.output()).not.toContain(key);
    expect(JSON.stringify([...all.values()])).not.toContain(key);
  }
  const redis = await redisFor();
  try {
    let dump = "";
    for (const { key: k } of await namespaceKeys(redis, server.namespace)) {
      const type = await redis.type(k);
      if (type === "stream") dump += JSON.stringify(await redis.xrange(k, "-", "+"));
      else if (type === "hash") dump += JSON.stringify(await redis.hgetall(k));
      else if (type === "string") dump += (await redis.get(k)) ?? "";
      else if (type === "set") dump += JSON.stringify(await redis.smembers(k));
      else if (type === "zset") dump += JSON.stringify(await redis.zrange(k, 0, -1));
    }
    expect(dump).toContain(acmeId); // the audit streams were read
    for (const key of [...Object.values(KEYS), WRONG]) expect(dump).not.toContain(key);
  } finally {
    redis.disconnect();
  }
}, 240_000);
