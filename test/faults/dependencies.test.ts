// Faults in what berth depends on: Redis going away and coming back, the Docker engine restarting mid-task.
// Runs serially after the main suite (see scripts/test): restarting dockerd would disturb other test files.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { httpRequest } from "../helpers/harness.js";
import { startPrivateRedis, type PrivateRedis } from "../helpers/private-redis.js";
import { namespaceContainers, runningContainers } from "../helpers/sweep.js";
import { spawnServer, type ServerProcess } from "../helpers/server-process.js";
import { waitFor } from "../helpers/wait-for.js";

const FINAL = ["succeeded", "failed", "timed_out", "canceled", "expired"];
const view = async (s: ServerProcess, id: string) => (await httpRequest(s.url, "GET", `/v1/tasks/${id}`)).json();

describe("Redis unreachable", () => {
  let redis: PrivateRedis;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    redis = await startPrivateRedis();
  });

  afterAll(async () => {
    await server?.cleanup();
    await redis.remove();
  });

  it("answers 503 (rather than hanging) while Redis is down, names it in /readyz, and runs tasks again once it is back", async () => {
    server = await spawnServer({ BERTH_REDIS_URL: redis.url });
    const s = server;
    // A task that prints before the outage, then (once the test lets it) prints again and ends while Redis is down.
    const submitted = await httpRequest(s.url, "POST", "/v1/tasks", {
      command: ["sh", "-c", "echo before; while [ ! -e go-on ]; do sleep 0.05; done; echo after"],
    });
    const { id, workspace } = submitted.json() as { id: string; workspace: string };
    await waitFor(
      "the task's first output",
      () => httpRequest(s.url, "GET", `/v1/tasks/${id}/logs`),
      (r) => r.body === "before\n",
    );

    await redis.stop();
    // Redis stays down meanwhile: a request waiting for it would hang until the deadline aborts it.
    const res = await httpRequest(s.url, "GET", `/v1/tasks/${id}`, undefined, {}, AbortSignal.timeout(30_000));
    expect(res.statusCode).toBe(503);
    expect(res.json().error.code).toBe("dependency_unavailable");
    expect(res.json().error.message).toMatch(/Redis/);
    const ready = await httpRequest(s.url, "GET", "/readyz", undefined, {}, AbortSignal.timeout(30_000));
    expect(ready.statusCode).toBe(503);
    expect(ready.json().error.message).toMatch(/Redis/);
    expect(ready.json().redis).toBe("unreachable");

    // The task ends while Redis is down: its container stops running on the engine.
    await writeFile(path.join(s.root, "workspaces", workspace, "go-on"), "");
    await waitFor(
      "the task's container to stop running",
      () => runningContainers(s.namespace),
      (c) => c.length === 0,
      { timeoutMs: 60_000 },
    );
    await redis.start();
    await waitFor(
      "readyz to recover",
      () => httpRequest(s.url, "GET", "/readyz"),
      (r) => r.statusCode === 200,
      { timeoutMs: 30_000 },
    );
    const done = await waitFor(
      `task ${id} to finish`,
      () => view(s, id),
      (v) => FINAL.includes(v.status),
      { timeoutMs: 60_000 },
    );
    expect(done).toMatchObject({ status: "succeeded", exitCode: 0 });
    const logs = await httpRequest(s.url, "GET", `/v1/tasks/${id}/logs`);
    expect(logs.body).toBe("before\nafter\n");

    const again = await httpRequest(s.url, "POST", "/v1/tasks", { command: ["echo", "back"] });
    expect(again.statusCode).toBe(202);
    const v2 = await waitFor(
      "new task",
      () => view(s, again.json().id),
      (v) => FINAL.includes(v.status),
      { timeoutMs: 60_000 },
    );
    expect(v2.status).toBe("succeeded");
  }, 180_000);
});

describe("Docker engine restarted mid-task", () => {
  let server: ServerProcess | undefined;
  afterAll(async () => server?.cleanup());

  it("ends the task with a clear reason, hangs nowhere, and leaves no container", async () => {
    server = await spawnServer();
    const s = server;
    const submitted = await httpRequest(s.url, "POST", "/v1/tasks", { command: ["sleep", "600"] });
    const id = submitted.json().id as string;
    await waitFor(
      "task to run",
      () => view(s, id),
      (v) => v.status === "running",
    );

    await restartDockerd();
    const done = await waitFor(
      `task ${id} to end`,
      () => view(s, id),
      (v) => FINAL.includes(v.status),
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    expect(done.status).toBe("failed");
    expect(done.reason === "docker_unavailable" || typeof done.exitCode === "number").toBe(true);
    expect(done.message ?? `exit ${done.exitCode}`).not.toBe("");
    await waitFor(
      "no container left",
      () => namespaceContainers(s.namespace),
      (c) => c.length === 0,
      { timeoutMs: 60_000 },
    );

    // The server still runs tasks after the engine came back.
    const next = await httpRequest(s.url, "POST", "/v1/tasks", { command: ["echo", "ok"] });
    const v = await waitFor(
      "a task after the restart",
      () => view(s, next.json().id),
      (x) => FINAL.includes(x.status),
      { timeoutMs: 60_000 },
    );
    expect(v.status).toBe("succeeded");
  }, 240_000);
});

/** Restarts the local dockerd the way scripts/lib/setup.sh started it. */
async function restartDockerd(): Promise<void> {
  const systemd = await execa("systemctl", ["is-active", "docker"], { reject: false });
  if (systemd.stdout.trim() === "active") {
    await execa("systemctl", ["restart", "docker"]);
  } else {
    const { stdout } = await execa("pgrep", ["-x", "dockerd"]);
    const pid = Number(stdout.split("\n")[0]);
    process.kill(pid, "SIGTERM");
    await waitFor(
      "dockerd to exit",
      () => execa("pgrep", ["-x", "dockerd"], { reject: false }).then((r) => r.stdout),
      (o) => o === "",
      { timeoutMs: 60_000 },
    );
    // In a session of its own (as setup.sh does): a signal to this test run's process group must not reach it.
    await execa("sh", ["-c", 'setsid -f dockerd > "$HOME/.berth/dockerd.log" 2>&1 < /dev/null']);
  }
  await waitFor(
    "dockerd to answer",
    () => execa("docker", ["info"], { reject: false }).then((r) => r.exitCode),
    (c) => c === 0,
    { timeoutMs: 60_000 },
  );
}
