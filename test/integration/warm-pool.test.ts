// The warm pool (runner/warm-pool.ts) on the real engine: containers started ahead with the same hardening as a
// task's, claimed by one task each and then removed, refilled, recycled, reaped when their worker is gone, and
// removed when it closes. What runs in them is told apart from the cold path only by being faster.
import { readdir } from "node:fs/promises";
import { PassThrough } from "node:stream";
import path from "node:path";
import { pino } from "pino";
import type { TaskView } from "../../src/contract/types.js";
import { startWorker } from "../../src/queue/worker.js";
import { taskCgroupParent } from "../../src/runner/cgroup-usage.js";
import { createDockerClient } from "../../src/runner/docker-runtime.js";
import { LABEL_POOL, LABEL_WORKER } from "../../src/runner/labels.js";
import { WarmPool } from "../../src/runner/warm-pool.js";
import { POOL_DIR } from "../../src/workspace/workspace.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { waitFor } from "../helpers/wait-for.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ BERTH_WARM_POOL: "2", BERTH_CONCURRENCY: "2" });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

/** The namespace's unclaimed warm containers. */
const idlePool = async (hh: Harness) =>
  (await hh.deps.runtime.findByLabels({ [LABEL_POOL]: "default" })).filter(
    (c) => c.labels["berth.namespace"] === hh.namespace && c.name.startsWith(`${hh.namespace}-pool-`) && c.running,
  );
const poolFull = (hh: Harness, size = 2) =>
  waitFor(
    "the warm pool to fill",
    () => idlePool(hh),
    (cs) => cs.length === size,
    { timeoutMs: 60_000 },
  );

/**
 * A pool of two default containers (the profiles of this file's harness) in `hh`'s namespace, run by no worker (as
 * `workerId`, which has no heartbeat).
 */
const poolWithoutWorker = (hh: Harness, workerId: string, beforeCreate?: () => Promise<void>) =>
  new WarmPool({
    runtime: hh.deps.runtime,
    config: { ...hh.deps.config, warmPool: { profiles: h.deps.config.warmPool.profiles, maxAgeSeconds: 600 } },
    namespace: hh.namespace,
    host: hh.deps.host,
    workerId,
    log: pino({ level: "silent" }),
    beforeCreate,
  });

async function logs(id: string): Promise<string> {
  const res = await h.request("GET", `/v1/tasks/${id}/logs`);
  expect(res.statusCode).toBe(200);
  return res.body;
}

/** Runs a task and says whether it started in a warm container (the pool's count of claims went up). */
async function run(body: Record<string, unknown>): Promise<{ task: TaskView; warm: boolean; out: string }> {
  await poolFull(h);
  const stats = () => {
    const s = h.worker?.warmPoolStats();
    return s ? s.hits + s.waited : 0;
  };
  const before = stats();
  const task = await h.waitFinished((await h.submit(body)).id);
  return { task, warm: stats() > before, out: await logs(task.id) };
}

const inspect = async (id: string) => (await createDockerClient()).getContainer(id).inspect();

describe("a warm container", () => {
  it("is created exactly as the task's container would be: the same hardening, limits, user and mount options", async () => {
    await poolFull(h);
    // A task that fits the profile runs warm; the same with other pids takes the cold path. Both sleep, to be seen.
    const warm = await h.submit({ command: ["sleep", "60"] });
    const cold = await h.submit({ command: ["sleep", "60"], limits: { pids: 255 } });
    const [w, c] = await Promise.all(
      [warm, cold].map((t) =>
        waitFor(
          `task ${t.id}'s container`,
          () => h.taskContainers(t.id),
          (cs) => cs.length === 1,
        ).then((cs) => inspect(cs[0]?.id ?? "")),
      ),
    );
    expect(w?.Config.Labels[LABEL_POOL]).toBe("default");
    expect(c?.Config.Labels[LABEL_POOL]).toBeUndefined();
    expect(w?.Name).toBe(`/${h.namespace}-task-${warm.id}`); // named for its task when claimed
    const hardening = (i: typeof w) => {
      const { PidsLimit: _pids, CgroupParent: _parent, ...host } = i?.HostConfig ?? {};
      return {
        host: { ...host, Mounts: host.Mounts?.map((m) => ({ ...m, Source: "" })) },
        user: i?.Config.User,
        workdir: i?.Config.WorkingDir,
        image: i?.Config.Image,
        tty: i?.Config.Tty,
      };
    };
    expect(hardening(w)).toEqual(hardening(c));
    // Each its own parent cgroup where the engine lets berth read usage (cgroupfs): the warm one's named when created.
    if (c?.HostConfig.CgroupParent) {
      expect(c.HostConfig.CgroupParent).toBe(taskCgroupParent(`${h.namespace}-task-${cold.id}`));
      expect(w?.HostConfig.CgroupParent).toMatch(new RegExp(`^${taskCgroupParent(`${h.namespace}-pool-`)}`));
    } else expect(w?.HostConfig.CgroupParent ?? "").toBe("");
    expect(w?.HostConfig).toMatchObject({ CapDrop: ["ALL"], ReadonlyRootfs: true, NetworkMode: "none", Init: true, PidsLimit: 256 });
    expect(c?.HostConfig.PidsLimit).toBe(255);
    for (const t of [warm, cold]) await h.request("POST", `/v1/tasks/${t.id}/cancel`);
    for (const t of [warm, cold]) expect((await h.waitFinished(t.id)).status).toBe("canceled");
  });

  it("runs the task in its workspace, named by the task's creation, with the environment a cold container has", async () => {
    const script = "pwd; ls -A; env | grep -v '^HOSTNAME=' | sort";
    const warm = await run({ command: ["sh", "-c", script], env: { GREETING: "hi 'there'" }, files: { "in.txt": "x" } });
    const cold = await run({
      command: ["sh", "-c", script],
      env: { GREETING: "hi 'there'" },
      files: { "in.txt": "x" },
      limits: { pids: 255 },
    });
    expect(warm.warm).toBe(true);
    expect(cold.warm).toBe(false);
    expect(warm.task.workspace).toBe(`task-${Date.parse(warm.task.createdAt)}-${warm.task.id}`);
    // The same but for the task's own identity (BERTH_TASK_ID), which is each task's.
    expect(warm.out).toContain(`BERTH_TASK_ID=${warm.task.id}\nBERTH_WORKSPACE=/workspace\n`);
    expect(cold.out).toContain(`BERTH_TASK_ID=${cold.task.id}\nBERTH_WORKSPACE=/workspace\n`);
    expect(warm.out.replaceAll(warm.task.id, "ID")).toBe(cold.out.replaceAll(cold.task.id, "ID"));
    expect(warm.out).toContain("/workspace\nin.txt\n");
    expect(warm.out).toContain("GREETING=hi 'there'\n");
  });

  it("shows the task nothing of the waiter or of earlier tasks: no other process, empty /workspace and /tmp, stdin at its end", async () => {
    const first = await run({ command: ["sh", "-c", "echo secret > /workspace/left.txt; echo secret > /tmp/left.txt"] });
    expect(first.warm).toBe(true);
    const script = "ls -A /workspace /tmp; ps -eo pid=,comm=; cat; echo stdin-ended";
    const second = await run({ command: ["sh", "-c", script] });
    expect(second.warm).toBe(true);
    const lines = second.out.split("\n");
    expect(lines.slice(0, 3)).toEqual(["/tmp:", "", "/workspace:"]);
    // docker-init, the task's shell and its ps: the waiter became the task (exec), nothing of it is left.
    const processes = lines.filter((l) => /^\s*\d+ /.test(l)).map((l) => l.trim().split(/\s+/)[1]);
    expect(processes).toEqual(["docker-init", "sh", "ps"]);
    expect(second.out).toContain("stdin-ended\n");
    expect(second.task.status).toBe("succeeded");
  });

  it("passes every byte a task prints at once, and its exit code, through many tasks in a row", async () => {
    const tasks = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        h.submit({ command: ["sh", "-c", `head -c 300000 /dev/zero | tr '\\0' ${"abcdefghijkl"[i]}; echo; exit ${i}`] }),
      ),
    );
    for (const [i, t] of tasks.entries()) {
      const done = await h.waitFinished(t.id, 120_000);
      expect({ i, exitCode: done.exitCode }).toEqual({ i, exitCode: i });
      expect(await logs(t.id)).toBe(`${"abcdefghijkl"[i]?.repeat(300_000)}\n`);
    }
    expect(h.worker?.warmPoolStats()?.hits).toBeGreaterThan(0);
  });

  it("counts what a warm task used as a cold one's: CPU time and peak memory from its container's own cgroup", async () => {
    const script = [
      "b = bytearray(100 * 1024 * 1024)",
      "for i in range(0, len(b), 4096): b[i] = 1",
      "import time",
      "t = time.process_time()",
      "while time.process_time() - t < 1.0: pass",
    ].join("\n");
    const { task, warm } = await run({ command: ["python3", "-c", script] });
    expect(warm).toBe(true);
    expect(task.status).toBe("succeeded");
    const info = (await (await createDockerClient()).info()) as { CgroupDriver?: string };
    if (info.CgroupDriver !== "cgroupfs") return expect(task.usage).toBeNull(); // README: usage needs cgroupfs
    const usage = task.usage as NonNullable<TaskView["usage"]>;
    expect(usage.cpuSeconds).toBeGreaterThanOrEqual(1.0);
    expect(usage.cpuSeconds).toBeLessThan(3);
    expect(usage.peakMemoryBytes).toBeGreaterThanOrEqual(100 * 1024 * 1024);
  });

  it("serves one task and is removed with it; the pool is filled again", async () => {
    const before = new Set((await poolFull(h)).map((c) => c.id));
    const { task, warm } = await run({ command: ["true"] });
    expect(warm).toBe(true);
    expect(await h.taskContainers(task.id)).toEqual([]);
    const after = await poolFull(h);
    // One of the two was used and is gone; a new one took its place.
    expect(after.filter((c) => before.has(c.id))).toHaveLength(1);
  });
});

describe("the pool's life", () => {
  it("serves a burst of 50 submissions, its worker sweeping for orphans all along: every task succeeds, most warm", async () => {
    // What the sweeps removed, from the worker's own log.
    const swept: string[] = [];
    const logStream = new PassThrough();
    logStream.on("data", (d: Buffer) =>
      swept.push(
        ...d
          .toString()
          .split("\n")
          .filter((l) => l.includes("whose worker is gone")),
      ),
    );
    const busy = await startHarness({ BERTH_WARM_POOL: "4", BERTH_CONCURRENCY: "4" }, { worker: false, logStream });
    const { keys, store, logs, endings } = busy.services;
    // A sweep every 50 ms instead of every minute: one lands while the pool is starting containers, many times over.
    const worker = await startWorker(busy.deps, keys, store, logs, endings, { sweepEveryMs: 50 });
    try {
      await poolFull(busy, 4);
      const tasks = await Promise.all(Array.from({ length: 50 }, (_, i) => busy.submit({ command: ["sh", "-c", `echo ${i}`] })));
      const done: TaskView[] = [];
      for (const t of tasks) done.push(await busy.waitFinished(t.id, 300_000)); // one poll at a time: the rate limit
      const outcome = (t: TaskView) => ({ status: t.status, reason: t.reason, message: t.message });
      expect(done.map(outcome)).toEqual(done.map(() => ({ status: "succeeded", reason: null, message: null })));
      expect(swept).toEqual([]); // nothing of the pool's (nor of any task's) was taken by a sweep
      const stats = worker.warmPoolStats();
      expect((stats?.hits ?? 0) + (stats?.waited ?? 0)).toBeGreaterThanOrEqual(25);
      // Nothing of the tasks is left: only the pool, filled again.
      const refilled = (await poolFull(busy, 4)).map((c) => c.id).sort();
      expect(await busy.leftoverContainers()).toEqual([]);
      expect((await busy.containers()).sort()).toEqual(refilled);
    } finally {
      await worker.close();
      await busy.close();
    }
  }, 300_000);

  it("replaces containers no task claimed within BERTH_WARM_POOL_MAX_AGE_SECONDS", async () => {
    const aging = await startHarness({ BERTH_WARM_POOL: "1", BERTH_WARM_POOL_MAX_AGE_SECONDS: "1" });
    try {
      const [first] = await poolFull(aging, 1);
      await waitFor(
        "the unclaimed container to be replaced",
        () => idlePool(aging),
        (cs) => cs.length === 1 && cs[0]?.id !== first?.id,
        { timeoutMs: 60_000 },
      );
      await waitFor(
        "the old one to be removed",
        () => aging.containers(),
        (ids) => !ids.includes(first?.id ?? ""),
      );
    } finally {
      await aging.close();
    }
  });

  it("removes its containers and their directories when the worker closes", async () => {
    const closing = await startHarness({ BERTH_WARM_POOL: "2" });
    try {
      await poolFull(closing);
      await closing.worker?.close();
      expect(await closing.containers()).toEqual([]);
      const poolRoot = path.join(closing.deps.config.dirs.workspaces, POOL_DIR, closing.namespace);
      expect(await readdir(poolRoot)).toEqual([]);
    } finally {
      await closing.close();
    }
  });

  it("is reaped like any container when its worker is gone, and the next worker removes its directories", async () => {
    const later = await startHarness({ BERTH_WARM_POOL: "0" }, { worker: false });
    // A pool whose worker has no heartbeat: as if its process had been killed. Once full it starts nothing more
    // (a killed process would not refill what the next worker reaps).
    let dead = false;
    const orphaned = poolWithoutWorker(later, "worker-that-died", async () => {
      if (dead) throw new Error("its process is gone");
    });
    try {
      orphaned.start();
      const started = await poolFull(later);
      expect(started.every((c) => c.labels[LABEL_WORKER] === "worker-that-died")).toBe(true);
      const poolRoot = path.join(later.deps.config.dirs.workspaces, POOL_DIR, later.namespace);
      expect(await readdir(poolRoot)).toEqual(["worker-that-died"]);
      dead = true;

      const worker = await startWorker(later.deps, later.services.keys, later.services.store, later.services.logs, later.services.endings);
      try {
        expect(await later.containers()).toEqual([]); // reaped before the new worker took any work
        expect(await readdir(poolRoot)).toEqual([]);
      } finally {
        await worker.close();
      }
    } finally {
      await orphaned.close();
      await later.close();
    }
  });

  it("is gone once any removal of it returns, also a removal that found another already under way", async () => {
    const racing = await startHarness({ BERTH_WARM_POOL: "0" }, { worker: false });
    // Its pool removes a container whose waiter exits, while a sweep stops and removes the same container.
    const pool = poolWithoutWorker(racing, "racing-worker");
    try {
      pool.start();
      const [c] = await poolFull(racing);
      const id = c?.id ?? "";
      const listedAfter = (removal: Promise<boolean>) => removal.then(async () => (await racing.containers()).includes(id));
      const removals = [racing.deps.runtime.removeById(id, 1), racing.deps.runtime.removeById(id), racing.deps.runtime.removeById(id)];
      expect(await Promise.all(removals.map(listedAfter))).toEqual([false, false, false]);
      // At most one of them removed it (the pool's own removal may have been first).
      expect((await Promise.all(removals)).filter(Boolean).length).toBeLessThanOrEqual(1);
    } finally {
      await pool.close();
      await racing.close();
    }
  });
});
