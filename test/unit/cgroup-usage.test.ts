// src/runner/cgroup-usage.ts: reading a task's CPU time and peak memory from its parent cgroup, for cgroup v1 and v2
// layouts (made here in a temp directory; test/integration/usage.test.ts reads the real ones), and removing it.
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { CgroupAccounting, isTaskCgroupParent, parseV1, parseV2, taskCgroupParent } from "../../src/runner/cgroup-usage.js";

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), "berth-cgroup-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("parsing", () => {
  it("v1: cpuacct.usage in ns and memory.max_usage_in_bytes", () => {
    expect(parseV1("1102725263\n", "108638208\n")).toEqual({ cpuSeconds: 1.103, peakMemoryBytes: 108_638_208 });
    expect(parseV1("0\n", null)).toEqual({ cpuSeconds: 0, peakMemoryBytes: null });
    expect(parseV1(null, "1")).toBeNull();
    expect(parseV1("garbage", "1")).toBeNull();
  });

  it("v2: usage_usec of cpu.stat and memory.peak (absent before Linux 5.19)", () => {
    const stat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 0\n";
    expect(parseV2(stat, "104857600\n")).toEqual({ cpuSeconds: 2.5, peakMemoryBytes: 104_857_600 });
    expect(parseV2(stat, null)).toEqual({ cpuSeconds: 2.5, peakMemoryBytes: null });
    expect(parseV2("user_usec 1\n", "1")).toBeNull();
    expect(parseV2(null, null)).toBeNull();
  });

  it("names each task's parent after its container, and recognises only those", () => {
    expect(taskCgroupParent("berth-task-abc12345")).toBe("/berth/berth-task-abc12345");
    expect(isTaskCgroupParent("/berth/berth-task-abc12345")).toBe(true);
    for (const p of ["", "/", "/docker", "/berth", "/berth/../etc", "/berth/a/b", "berth/x"]) expect(isTaskCgroupParent(p)).toBe(false);
  });
});

describe("CgroupAccounting", () => {
  const parent = taskCgroupParent("ns-task-abc12345");

  it("only with the cgroupfs driver, and only as root (it removes the directories it reads)", () => {
    expect(new CgroupAccounting({ driver: "cgroupfs", version: 1 }, root, true).parentFor("n")).toBe("/berth/n");
    expect(new CgroupAccounting({ driver: "systemd", version: 2 }, root, true).parentFor("n")).toBeNull();
    expect(new CgroupAccounting({ driver: "cgroupfs", version: 1 }, root, false).parentFor("n")).toBeNull();
    expect(new CgroupAccounting(null, root, true).parentFor("n")).toBeNull();
  });

  it("v1: reads cpuacct and memory, then removes the parent from every hierarchy", async () => {
    for (const h of ["cpuacct", "memory", "pids", "unified"]) await mkdir(path.join(root, h, parent), { recursive: true });
    await writeFile(path.join(root, "cpuacct", parent, "cpuacct.usage"), "1500000000\n");
    await writeFile(path.join(root, "memory", parent, "memory.max_usage_in_bytes"), "2048\n");
    const acc = new CgroupAccounting({ driver: "cgroupfs", version: 1 }, root, true);
    expect(await acc.read(parent)).toEqual({ cpuSeconds: 1.5, peakMemoryBytes: 2048 });
    // The kernel's files go with the directory; here the test removes them first.
    await rm(path.join(root, "cpuacct", parent, "cpuacct.usage"));
    await rm(path.join(root, "memory", parent, "memory.max_usage_in_bytes"));
    await acc.release(parent);
    for (const h of ["cpuacct", "memory", "pids", "unified"]) expect(await readdir(path.join(root, h, "berth"))).toEqual([]);
    await acc.release(parent); // already gone: fine
  });

  it("v2: reads cpu.stat and memory.peak of the one hierarchy", async () => {
    await mkdir(path.join(root, parent), { recursive: true });
    await writeFile(path.join(root, parent, "cpu.stat"), "usage_usec 1234567\n");
    await writeFile(path.join(root, parent, "memory.peak"), "4096\n");
    const acc = new CgroupAccounting({ driver: "cgroupfs", version: 2 }, root, true);
    expect(await acc.read(parent)).toEqual({ cpuSeconds: 1.235, peakMemoryBytes: 4096 });
  });

  it("a parent that is not there means the engine's cgroups are not visible here: no later task gets one", async () => {
    const acc = new CgroupAccounting({ driver: "cgroupfs", version: 1 }, root, true);
    expect(await acc.read(parent)).toBeNull();
    expect(acc.parentFor("next")).toBeNull();
  });

  it("refuses to remove a parent that still holds something", async () => {
    await mkdir(path.join(root, "cpuacct", parent, "still-there"), { recursive: true });
    const acc = new CgroupAccounting({ driver: "cgroupfs", version: 1 }, root, true);
    await expect(acc.release(parent)).rejects.toThrow(/ENOTEMPTY/);
  });
});
