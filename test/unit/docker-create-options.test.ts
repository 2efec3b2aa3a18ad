// toCreateOptions (src/runner/docker-create-options.ts): what the engine is asked for when a task's container is
// created. What tasks can do under those flags is tried on the real engine (test/integration/hostile.test.ts,
// pipeline.test.ts), and warm-pool.test.ts compares a warm and a cold container by `docker inspect`; here every
// case of the pure mapping.
import type { ContainerSpec } from "../../src/runner/container-runtime.js";
import { toCreateOptions } from "../../src/runner/docker-create-options.js";

const spec: ContainerSpec = {
  name: "ns-task-abc",
  image: "berth-runner:latest",
  command: ["sh", "-c", "echo hi"],
  env: { A: "1", B: "two words" },
  workspacePath: "/ws/task-1-abc",
  user: "1000:1000",
  network: "none",
  limits: { memoryBytes: 256 * 2 ** 20, nanoCpus: 1.5e9, pids: 64 },
  maxFileBytes: 100 * 2 ** 20,
  tmpfsBytes: 64 * 2 ** 20,
  runtime: "",
  labels: { "berth.namespace": "ns" },
};

describe("the create request of a task's container", () => {
  it("asks for every hardening flag: no capabilities, no new privileges, read-only root, docker-init, no logs kept", () => {
    const o = toCreateOptions(spec, 2, null, false);
    expect(o.HostConfig).toMatchObject({
      Init: true,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Privileged: false,
      ReadonlyRootfs: true,
      IpcMode: "private",
      NetworkMode: "none",
      Tmpfs: { "/tmp": `rw,nosuid,nodev,size=${64 * 2 ** 20},mode=1777` },
      LogConfig: { Type: "none", Config: {} },
    });
    expect(o.User).toBe("1000:1000");
    expect(o.Tty).toBe(false);
  });

  it("sets its limits: memory without swap, CPUs, pids, and per file the disk limit (fsize), no core dumps", () => {
    const h = toCreateOptions(spec, 2, null, false).HostConfig;
    expect(h).toMatchObject({ Memory: 256 * 2 ** 20, MemorySwap: 256 * 2 ** 20, NanoCpus: 1.5e9, PidsLimit: 64 });
    expect(h?.Ulimits).toEqual([
      { Name: "nofile", Soft: 4096, Hard: 4096 },
      { Name: "core", Soft: 0, Hard: 0 },
      { Name: "fsize", Soft: 100 * 2 ** 20, Hard: 100 * 2 ** 20 },
    ]);
  });

  it("caps a CPU limit above the engine's CPUs at all of them, and leaves it when the count is unknown", () => {
    const big = { ...spec, limits: { ...spec.limits, nanoCpus: 8e9 } };
    expect(toCreateOptions(big, 2, null, false).HostConfig?.NanoCpus).toBe(2e9);
    expect(toCreateOptions(big, null, null, false).HostConfig?.NanoCpus).toBe(8e9);
  });

  it("mounts the workspace by Mounts (a missing directory fails, never created as root) and caches without copying", () => {
    const withCache = { ...spec, volumes: [{ volume: "berth-cache-acme-pip", target: "/cache/pip" }] };
    expect(toCreateOptions(withCache, 2, null, false).HostConfig?.Mounts).toEqual([
      { Type: "bind", Source: "/ws/task-1-abc", Target: "/workspace", ReadOnly: false },
      { Type: "volume", Source: "berth-cache-acme-pip", Target: "/cache/pip", ReadOnly: false, VolumeOptions: { NoCopy: true } },
    ]);
    expect(toCreateOptions(spec, 2, null, false).WorkingDir).toBe("/workspace");
  });

  it("passes the command and environment as given, as separate words (no shell)", () => {
    const o = toCreateOptions(spec, 2, null, false);
    expect(o.Cmd).toEqual(["sh", "-c", "echo hi"]);
    expect(o.Env).toEqual(["A=1", "B=two words"]);
    expect(o.name).toBe("ns-task-abc");
    expect(o.Labels).toEqual({ "berth.namespace": "ns" });
  });

  it("attaches stdin only for the warm pool's waiter, closed after its script", () => {
    expect(toCreateOptions(spec, 2, null, false)).toMatchObject({ OpenStdin: false, StdinOnce: false, AttachStdin: false });
    expect(toCreateOptions(spec, 2, null, true)).toMatchObject({ OpenStdin: true, StdinOnce: true, AttachStdin: true });
  });

  it("names a runtime and a parent cgroup only when there is one", () => {
    const plain = toCreateOptions(spec, 2, null, false).HostConfig ?? {};
    expect("Runtime" in plain || "CgroupParent" in plain).toBe(false);
    const h = toCreateOptions({ ...spec, runtime: "runsc" }, 2, "berth-tasks-abc", false).HostConfig;
    expect(h).toMatchObject({ Runtime: "runsc", CgroupParent: "berth-tasks-abc" });
  });
});
