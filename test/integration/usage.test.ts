// A task's identity inside its container, what it used (CPU time, peak memory, workspace bytes), a tenant's usage
// (GET /v1/usage) and its storage quota (BERTH_TENANT_MAX_STORED_BYTES): real Docker engine, Redis and disk.
import type { TaskView, TenantUsage } from "../../src/contract/types.js";
import { sweep } from "../../src/cleanup/sweep.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { startGatedTask } from "../helpers/gated-task.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME = { authorization: "Bearer acme-key-0001" };
const GLOBEX = { authorization: "Bearer globex-key-0002" };
const QUOTA = { authorization: "Bearer quota-key-0003" };
const MAX_STORED = 300_000;
const MiB = 1024 * 1024;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002,quota:quota-key-0003",
    BERTH_TENANT_MAX_STORED_BYTES: String(MAX_STORED),
  });
}, 120_000);

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

const usageOf = async (headers: Record<string, string>, query = ""): Promise<TenantUsage> => {
  const res = await h.request("GET", `/v1/usage${query}`, undefined, headers);
  expect(res.statusCode).toBe(200);
  return res.json() as TenantUsage;
};

const gatedTask = (headers: Record<string, string>) => startGatedTask(h, headers);

describe("the task's identity", () => {
  it("BERTH_TASK_ID and BERTH_WORKSPACE are in the task's environment; a task cannot set them itself", async () => {
    const t = await h.submit({ command: ["sh", "-c", 'printf "%s %s %s" "$BERTH_TASK_ID" "$BERTH_WORKSPACE" "$(pwd)"'] }, GLOBEX);
    expect((await h.waitFinished(t.id, 60_000, GLOBEX)).status).toBe("succeeded");
    const logs = await h.request("GET", `/v1/tasks/${t.id}/logs`, undefined, GLOBEX);
    expect(logs.body).toBe(`${t.id} /workspace /workspace`);

    for (const name of ["BERTH_TASK_ID", "BERTH_WORKSPACE"]) {
      const res = await h.request("POST", "/v1/tasks", { command: ["true"], env: { [name]: "mine" } }, GLOBEX);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toEqual({
        code: "invalid_input",
        message: `Invalid env.${name}: ${name} is set by berth in every task (BERTH_TASK_ID, BERTH_WORKSPACE); leave it out.`,
      });
    }
  }, 90_000);
});

describe("what a task used", () => {
  it("a task that burns about 1 CPU second and touches about 100 MB: plausible usage once it has ended, none before", async () => {
    const { task: gated, finish } = await gatedTask(ACME);
    expect((await h.get(gated.id, ACME)).usage).toBeNull();
    await finish();
    await h.waitFinished(gated.id, 60_000, ACME);

    const script = [
      "import time",
      "b = bytearray(100 * 1024 * 1024)",
      "for i in range(0, len(b), 4096): b[i] = 1",
      "t = time.process_time()",
      "while time.process_time() - t < 1.0: pass",
      "open('out.bin', 'wb').write(b'x' * 50000)",
    ].join("\n");
    const t = await h.submit({ command: ["python3", "-c", script], limits: { memoryMb: 512 } }, ACME);
    const done = await h.waitFinished(t.id, 120_000, ACME);
    expect(done.status).toBe("succeeded");
    expect(done.usage).not.toBeNull();
    const usage = done.usage as NonNullable<TaskView["usage"]>;
    // At least the second it burned; Python's start and touching 100 MB add a little, never seconds.
    expect(usage.cpuSeconds).toBeGreaterThanOrEqual(1.0);
    expect(usage.cpuSeconds).toBeLessThan(3);
    // The 100 MB it touched plus the interpreter; well under its 512 MB limit.
    expect(usage.peakMemoryBytes).toBeGreaterThanOrEqual(100 * MiB);
    expect(usage.peakMemoryBytes).toBeLessThan(200 * MiB);
    expect(done.workspaceBytes).toBe(50_000);

    // The tenant's CPU time over a window, and what it holds now.
    await waitFor(
      "acme's usage to count the task",
      () => usageOf(ACME, "?since=1h"),
      (u) => u.cpuSeconds >= usage.cpuSeconds,
    );
    const u = await usageOf(ACME, "?since=1h");
    expect(u).toMatchObject({ tenant: "acme", queued: 0, running: 0, limits: { maxStoredBytes: MAX_STORED, maxActiveTasks: 100 } });
    expect(u.cpuSeconds).toBeGreaterThanOrEqual(usage.cpuSeconds);
    expect(u.cpuSeconds).toBeLessThan(usage.cpuSeconds + 1); // the gated task slept
    expect(u.storedBytes.workspaces).toBeGreaterThanOrEqual(50_000);
    expect(u.storedBytes.archives).toBeGreaterThanOrEqual(done.archive?.bytes ?? 0);
    expect(u.storedBytes.total).toBe(u.storedBytes.workspaces + u.storedBytes.archives + u.storedBytes.caches);
    expect(Date.parse(u.since)).toBeGreaterThan(Date.now() - 3_700_000);
    // A window that starts after the task ended holds none of it; another tenant's holds none of acme's.
    expect((await usageOf(ACME, `?since=${new Date(Date.now() + 60_000).toISOString()}`)).cpuSeconds).toBe(0);
    expect((await usageOf(GLOBEX)).cpuSeconds).toBeLessThan(usage.cpuSeconds);
    const bad = await h.request("GET", "/v1/usage?since=yesterday", undefined, ACME);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/^Invalid since: /);
  }, 180_000);

  it("counts queued and running tasks", async () => {
    const { task, finish } = await gatedTask(GLOBEX);
    const u = await usageOf(GLOBEX);
    expect(u.running).toBe(1);
    await finish();
    await h.waitFinished(task.id, 60_000, GLOBEX);
    expect((await usageOf(GLOBEX)).running).toBe(0);
  }, 90_000);
});

describe("the storage quota", () => {
  it("refuses a tenant's submits once it holds too much (running tasks go on), and takes them again after cleanup", async () => {
    const { task: running, finish } = await gatedTask(QUOTA);
    const big = await h.submit({ command: ["sh", "-c", "head -c 400000 /dev/urandom > big.bin"] }, QUOTA);
    expect((await h.waitFinished(big.id, 60_000, QUOTA)).status).toBe("succeeded");
    const over = await waitFor(
      "quota's stored bytes to count the task",
      () => usageOf(QUOTA),
      (u) => u.storedBytes.total >= MAX_STORED,
    );
    expect(over.storedBytes.workspaces).toBeGreaterThanOrEqual(400_000);

    const refused = await h.request("POST", "/v1/tasks", { command: ["true"] }, QUOTA);
    expect(refused.statusCode).toBe(429);
    expect(refused.headers.get("retry-after")).toBe(String(h.deps.config.retention.cleanupIntervalSeconds));
    const { code, message } = refused.json().error;
    expect(code).toBe("quota_exceeded");
    expect(message).toContain(`hold ${over.storedBytes.total} bytes`);
    expect(message).toContain(`the ${MAX_STORED} bytes BERTH_TENANT_MAX_STORED_BYTES allows`);
    // Another tenant is not affected, and the tenant's running task is not stopped.
    expect((await h.request("POST", "/v1/tasks", { command: ["true"] }, GLOBEX)).statusCode).toBe(202);
    expect((await h.get(running.id, QUOTA)).status).toBe("running");

    // Cleanup (as `berth workspace clean --all`) removes the finished task's files: the tenant is back under.
    const pass = await sweep(h.deps, h.services, { all: true });
    expect(pass.removed.map((r) => r.taskId)).toContain(big.id);
    expect(pass.removed.map((r) => r.taskId)).not.toContain(running.id);
    const after = await usageOf(QUOTA);
    expect(after.storedBytes).toEqual({ workspaces: 0, archives: 0, caches: 0, total: 0 });
    expect(after.running).toBe(1);
    const again = await h.request("POST", "/v1/tasks", { command: ["true"] }, QUOTA);
    expect(again.statusCode).toBe(202);
    await h.waitFinished(again.json().id, 60_000, QUOTA);

    // DELETE takes a task's bytes back too, once.
    await finish();
    await h.waitFinished(running.id, 60_000, QUOTA);
    const held = await waitFor(
      "the finished tasks to count",
      () => usageOf(QUOTA),
      (u) => u.storedBytes.archives > 0,
    );
    expect((await h.request("DELETE", `/v1/tasks/${running.id}`, undefined, QUOTA)).statusCode).toBe(204);
    const afterDelete = await usageOf(QUOTA);
    expect(afterDelete.storedBytes.total).toBeLessThan(held.storedBytes.total);
    await sweep(h.deps, h.services, { all: true });
    expect((await usageOf(QUOTA)).storedBytes.total).toBe(0);
  }, 180_000);
});
