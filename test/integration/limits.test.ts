// Limits a hostile client cannot lift (API.md §5): CPU limits the engine reads as "unlimited" are refused, the
// workspace has a disk limit (kernel per-file cap + a watcher of the total), and /workspace is nosuid,nodev.
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { listArchive } from "../../src/archive/read-archive.js";
import { startHarness, type Harness } from "../helpers/harness.js";

const MiB = 1024 * 1024;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ BERTH_MAX_CPUS: "1024", BERTH_DEFAULT_DISK_MB: "256", BERTH_MAX_DISK_MB: "4096" });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

/** Disk space the workspace takes on the host, as `du` counts it. */
const du = async (workspace: string) =>
  Number((await execa("du", ["-s", "-x", "-B1", path.join(h.deps.config.dirs.workspaces, workspace)])).stdout.split("\t")[0]);

/** The container's CPU quota per 100 ms period, as its cgroup shows it (v1 or v2). */
const CPU_QUOTA = "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us";
const output = async (id: string) => (await h.request("GET", `/v1/tasks/${id}/logs`)).body;

describe("CPU limits", () => {
  it.each([1e-12, 0.001])("refuses cpus %p with 400 naming limits.cpus, and queues nothing", async (cpus) => {
    const before = await h.services.queue.counts();
    const res = await h.request("POST", "/v1/tasks", { command: ["true"], limits: { cpus } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toMatchObject({ code: "invalid_input" });
    expect(res.json().error.message).toMatch(/^Invalid limits\.cpus: must be at least 0\.01/);
    expect(await h.services.queue.counts()).toEqual(before);
  });

  it("gives the smallest allowed limit a real quota (1 ms per 100 ms), never none", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", CPU_QUOTA], limits: { cpus: 0.01 } })).id);
    expect(t).toMatchObject({ status: "succeeded", limits: { cpus: 0.01 } });
    expect((await output(t.id)).trim().split(" ")[0]).toBe("1000");
  });

  it("caps a limit above the engine's CPU count at that count instead of failing", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", CPU_QUOTA], limits: { cpus: 1024 } })).id);
    expect(t.status).toBe("succeeded");
    const quota = Number((await output(t.id)).trim().split(" ")[0]);
    expect(quota).toBeGreaterThanOrEqual(100_000);
    expect(quota % 100_000).toBe(0);
  });
});

describe("disk limit", () => {
  it("shows limits.diskMb in the task view, the configured default when not given", async () => {
    const t = await h.submit({ command: ["true"] });
    expect(t.limits.diskMb).toBe(256);
    const res = await h.request("POST", "/v1/tasks", { command: ["true"], limits: { diskMb: 5000 } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(/limits\.diskMb.*BERTH_MAX_DISK_MB/);
    await h.waitFinished(t.id);
  });

  it("stops a fast writer past its limit: failed, disk_limit_exceeded, archived as it was, within the documented margin", async () => {
    // Four writers, 32 MiB files as fast as the page cache takes them, without end.
    const writer =
      "for w in 1 2 3 4; do (i=0; while :; do i=$((i+1)); dd if=/dev/zero of=w$w-$i bs=1M count=32 2>/dev/null; done) & done; wait";
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", writer], limits: { diskMb: 64 } })).id);
    expect(t).toMatchObject({ status: "failed", reason: "disk_limit_exceeded" });
    expect(t.message).toMatch(/^Stopped: its workspace held [\d.]+ MB, past its disk limit of 64 MB \(limits\.diskMb\)/);
    // The archive is made of what is there.
    expect(t.archive).not.toBeNull();
    const entries = await listArchive(path.join(h.deps.config.dirs.archives, `${t.workspace}.tar.gz`));
    expect(entries.filter((e) => e.type === "File").length).toBe(
      (await readdir(path.join(h.deps.config.dirs.workspaces, t.workspace))).length,
    );
    // SECURITY.md: at most about a quarter of a second of writing past the limit (measured 0.2-0.6 GB/s... see there).
    const used = await du(t.workspace);
    expect(used).toBeGreaterThan(64 * MiB);
    expect(used).toBeLessThan(64 * MiB + 1024 * MiB);
  });

  it("lets the kernel stop any single file at the limit", async () => {
    const t = await h.waitFinished(
      (await h.submit({ command: ["sh", "-c", "head -c 100000000 /dev/zero > big; echo after"], limits: { diskMb: 8 } })).id,
    );
    expect(t).toMatchObject({ status: "failed", reason: "disk_limit_exceeded" });
    expect((await stat(path.join(h.deps.config.dirs.workspaces, t.workspace, "big"))).size).toBe(8 * MiB);
  });

  it("refuses to restore a fromTask workspace larger than the new task's limit", async () => {
    const source = await h.waitFinished((await h.submit({ command: ["sh", "-c", "head -c 3000000 /dev/urandom > r.bin"] })).id);
    expect(source.status).toBe("succeeded");
    const t = await h.waitFinished((await h.submit({ command: ["true"], fromTask: source.id, limits: { diskMb: 2 } })).id);
    expect(t).toMatchObject({ status: "failed", reason: "disk_limit_exceeded" });
    expect(t.message).toMatch(/more than this task's disk limit of 2 MB/);
  });

  it("keeps a task under its limit untouched", async () => {
    const t = await h.waitFinished(
      (await h.submit({ command: ["sh", "-c", "head -c 2000000 /dev/urandom > r.bin"], limits: { diskMb: 4 } })).id,
    );
    expect(t).toMatchObject({ status: "succeeded", reason: null });
  });
});

it("mounts /workspace nosuid,nodev", async () => {
  const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "grep ' /workspace ' /proc/self/mountinfo"] })).id);
  expect(t.status).toBe("succeeded");
  const options = (await output(t.id)).split(" ")[5]?.split(",") ?? [];
  expect(options).toEqual(expect.arrayContaining(["rw", "nosuid", "nodev"]));
});
