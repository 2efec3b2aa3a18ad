// Faults that hit the server process itself: SIGTERM, a second signal, SIGKILL mid-task and a restart.
// Runs serially after the main suite (see scripts/test), against the real engine and Redis.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { httpRequest } from "../helpers/harness.js";
import { namespaceContainers } from "../helpers/sweep.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";
import { waitFor, within } from "../helpers/wait-for.js";

const FINAL = ["succeeded", "failed", "timed_out", "canceled", "expired"];
let servers: ServerProcess[] = [];

afterEach(async () => {
  for (const s of servers) await s.cleanup();
  servers = [];
});

async function start(env: Record<string, string> = {}) {
  const s = await spawnServer(env);
  servers.push(s);
  return s;
}

const submit = async (s: ServerProcess, body: unknown) => {
  const res = await httpRequest(s.url, "POST", "/v1/tasks", body);
  expect(res.statusCode).toBe(202);
  return res.json().id as string;
};
const view = async (s: ServerProcess, id: string) => (await httpRequest(s.url, "GET", `/v1/tasks/${id}`)).json();
const waitStatus = (s: ServerProcess, id: string, ok: (status: string) => boolean, timeoutMs = 60_000) =>
  waitFor(
    `task ${id} status`,
    () => view(s, id),
    (v) => ok(v.status),
    { timeoutMs, intervalMs: 200 },
  );

describe("SIGTERM", () => {
  it("lets a running task finish, records it, and exits with no container left", async () => {
    const s = await start({ BERTH_SHUTDOWN_TIMEOUT_SECONDS: "300" });
    // The task runs until the test lets it finish, which it does once shutdown has begun.
    const id = await submit(s, { command: ["sh", "-c", "echo started; while [ ! -e finish ]; do sleep 0.05; done; echo finished"] });
    await waitFor(
      "the task's first output",
      () => httpRequest(s.url, "GET", `/v1/tasks/${id}/logs`),
      (r) => r.body === "started\n",
    );
    const { workspace } = await view(s, id);
    s.proc.kill("SIGTERM");
    await waitFor(
      "shutdown to begin",
      async () => s.output(),
      (o) => o.includes("shutting down"),
    );
    await writeFile(path.join(s.root, "workspaces", workspace, "finish"), "");
    const result = await s.proc;
    expect(result.exitCode).toBe(0);
    expect(await namespaceContainers(s.namespace)).toEqual([]);
    await s.restart();
    const v = await view(s, id);
    expect(v).toMatchObject({ status: "succeeded", exitCode: 0 });
  });

  it("stops a task still running at the shutdown deadline and records why", async () => {
    const s = await start({ BERTH_SHUTDOWN_TIMEOUT_SECONDS: "2" });
    const id = await submit(s, { command: ["sleep", "600"] });
    await waitStatus(s, id, (st) => st === "running");
    s.proc.kill("SIGTERM");
    // It stops the task at the 2 s deadline instead of waiting the task's 600 s.
    const result = await within(s.proc, 120_000, "berth to exit at its shutdown deadline");
    expect(result.exitCode).toBe(0);
    expect(await namespaceContainers(s.namespace)).toEqual([]);
    await s.restart();
    const v = await view(s, id);
    expect(v).toMatchObject({ status: "failed", reason: "worker_shutdown" });
    expect(v.archive).not.toBeNull();
  });

  it("exits at once on a second signal", async () => {
    const s = await start({ BERTH_SHUTDOWN_TIMEOUT_SECONDS: "300" });
    const id = await submit(s, { command: ["sleep", "600"] });
    await waitStatus(s, id, (st) => st === "running");
    s.proc.kill("SIGTERM");
    await waitFor(
      "shutdown to begin",
      async () => s.output(),
      (o) => o.includes("shutting down"),
    );
    s.proc.kill("SIGTERM");
    // At once: not after its 300 s shutdown deadline.
    const result = await within(s.proc, 60_000, "berth to exit on the second signal");
    expect(result.exitCode).toBe(1);
  });
});

describe("SIGKILL mid-task", () => {
  it("ends the task in a final state after a restart, with never two containers for it and none left", async () => {
    const s = await start();
    const id = await submit(s, { command: ["sh", "-c", "echo started; sleep 600"] });
    await waitFor(
      "the task's first output",
      () => httpRequest(s.url, "GET", `/v1/tasks/${id}/logs`),
      (r) => r.body.includes("started"),
    );
    s.proc.kill("SIGKILL");
    await s.proc;
    await s.restart();
    let most = 0;
    const v = await waitFor(
      `task ${id} to reach a final state`,
      async () => {
        const { stdout } = await execa("docker", ["ps", "-q", "--filter", `label=berth.task-id=${id}`]);
        most = Math.max(most, stdout.split("\n").filter(Boolean).length);
        return view(s, id);
      },
      (x) => FINAL.includes(x.status),
      { timeoutMs: 150_000, intervalMs: 500 },
    );
    expect(v).toMatchObject({ status: "failed", reason: "worker_lost" });
    expect(v.message).toMatch(/lost track/);
    expect(most).toBeLessThanOrEqual(1);
    await waitFor(
      "the orphan container to be removed",
      () => namespaceContainers(s.namespace),
      (c) => c.length === 0,
      { timeoutMs: 30_000 },
    );
    const logs = await httpRequest(s.url, "GET", `/v1/tasks/${id}/logs`);
    expect(logs.body).toContain("started");
  }, 240_000);
});
