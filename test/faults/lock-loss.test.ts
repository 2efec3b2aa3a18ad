// A worker that loses its BullMQ lock on a running task (as after a long stall): the task is stopped and recorded,
// and at no moment do two containers run it.
import { execa } from "execa";
import { startHarness, type Harness } from "../helpers/harness.js";
import { waitFor } from "../helpers/wait-for.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ BERTH_CONCURRENCY: "2" });
});

afterAll(async () => {
  // Not leftoverContainers(): the job whose lock was taken stays "active" in BullMQ until its stall check.
  const left = h ? await h.containers() : [];
  await h?.close();
  expect(left).toEqual([]);
}, 120_000);

it("stops a task whose lock was lost, records it as worker_lost, and never runs it twice at once", async () => {
  const t = await h.submit({ command: ["sh", "-c", "echo started; sleep 600"] });
  await waitFor(
    "the task's output",
    () => h.request("GET", `/v1/tasks/${t.id}/logs`),
    (r) => r.body.includes("started"),
  );

  // Take the job's lock away, as if the worker had stalled past lockDuration and another worker took over.
  const lockKey = `${h.services.keys.bullPrefix}:tasks:${t.id}:lock`;
  expect(await h.deps.redis.exists(lockKey)).toBe(1);
  await h.deps.redis.del(lockKey);

  let most = 0;
  const done = await waitFor(
    `task ${t.id} to end`,
    async () => {
      const { stdout } = await execa("docker", ["ps", "-q", "--filter", `label=berth.task-id=${t.id}`]);
      most = Math.max(most, stdout.split("\n").filter(Boolean).length);
      return h.get(t.id);
    },
    (v) => !["queued", "running"].includes(v.status),
    { timeoutMs: 90_000, intervalMs: 200 },
  );

  expect(done).toMatchObject({ status: "failed", reason: "worker_lost" });
  expect(most).toBeLessThanOrEqual(1);
  expect(await h.containers()).toEqual([]);
}, 120_000);
