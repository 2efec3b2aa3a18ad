// The warm pool's settings (BERTH_WARM_POOL, BERTH_WARM_POOL_PROFILES, BERTH_WARM_POOL_MAX_AGE_SECONDS) and which
// tasks fit a pooled container.
import { loadConfig } from "../../src/config/config.js";
import { buildContainerSpec } from "../../src/runner/container-spec.js";
import { fitKey } from "../../src/runner/warm-pool.js";
import type { TaskSpec } from "../../src/domain/task.js";

const message = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    return (err as Error).message;
  }
  return "no error";
};

describe("warm pool settings", () => {
  it("keeps 2 containers of the default profile by default, each replaced after 600 s unclaimed", () => {
    const c = loadConfig({});
    expect(c.warmPool).toEqual({
      maxAgeSeconds: 600,
      profiles: [{ name: "default", image: "berth-runner:latest", limits: { memoryMb: 512, cpus: 1, pids: 256, diskMb: 1024 }, size: 2 }],
    });
  });

  it("turns off with 0, and follows the default limits and image", () => {
    expect(loadConfig({ BERTH_WARM_POOL: "0" }).warmPool.profiles).toEqual([]);
    const c = loadConfig({ BERTH_WARM_POOL: "3", BERTH_DEFAULT_IMAGE: "img:1", BERTH_DEFAULT_MEMORY_MB: "256" });
    expect(c.warmPool.profiles).toEqual([
      { name: "default", image: "img:1", limits: { memoryMb: 256, cpus: 1, pids: 256, diskMb: 1024 }, size: 3 },
    ]);
  });

  it("adds the profiles of BERTH_WARM_POOL_PROFILES, each key optional", () => {
    const c = loadConfig({
      BERTH_ALLOWED_IMAGES: "berth-runner:latest,python:*",
      BERTH_WARM_POOL_PROFILES: " image=python:3.12 , memoryMb=1024, size=3 ; cpus=0.5,pids=64,diskMb=100 ",
    });
    expect(c.warmPool.profiles.slice(1)).toEqual([
      { name: "profile-1", image: "python:3.12", limits: { memoryMb: 1024, cpus: 1, pids: 256, diskMb: 1024 }, size: 3 },
      { name: "profile-2", image: "berth-runner:latest", limits: { memoryMb: 512, cpus: 0.5, pids: 64, diskMb: 100 }, size: 1 },
    ]);
  });

  it("names the variable and what is wrong", () => {
    const v = (profiles: string, env: Record<string, string> = {}) => message({ BERTH_WARM_POOL_PROFILES: profiles, ...env });
    expect(v("memory=5")).toMatch(
      /^Invalid BERTH_WARM_POOL_PROFILES: profile-1 has "memory=5"; each entry is key=value with a key among image/,
    );
    expect(v("image=other:1")).toMatch(/profile-1's image "other:1" is not in BERTH_ALLOWED_IMAGES/);
    expect(v("cpus=0.001")).toMatch(/profile-1's cpus must be a number from 0.01 to 2, got "0.001"/);
    expect(v("memoryMb=99999")).toMatch(/profile-1's memoryMb must be a whole number from 16 to 4096/);
    expect(v("pids=1.5")).toMatch(/profile-1's pids must be a whole number/);
    expect(v("size=0")).toMatch(/profile-1's size must be a whole number from 1 to 64/);
    expect(v("pids=64,pids=65")).toMatch(/profile-1 gives pids twice/);
    expect(v("memoryMb=512")).toMatch(/profile-1 is the same as default; .*\(the default profile's size is BERTH_WARM_POOL, 0 for none\)/);
    expect(v("pids=64,size=40;memoryMb=64,size=30")).toMatch(/asks for 72 containers in all .* more than 64/);
    expect(message({ BERTH_WARM_POOL: "65" })).toMatch(/^Invalid BERTH_WARM_POOL: must be a whole number from 0 to 64/);
    expect(message({ BERTH_WARM_POOL_MAX_AGE_SECONDS: "0" })).toMatch(/^Invalid BERTH_WARM_POOL_MAX_AGE_SECONDS/);
  });
});

describe("which tasks fit a pooled container", () => {
  const config = loadConfig({ BERTH_ALLOW_NETWORK: "true", BERTH_ALLOWED_IMAGES: "berth-runner:latest,other:*" });
  const task: TaskSpec = {
    command: ["true"],
    image: "berth-runner:latest",
    env: {},
    files: {},
    fromTask: null,
    timeoutSeconds: 60,
    limits: { memoryMb: 512, cpus: 1, pids: 256, diskMb: 1024 },
    network: "none",
    ttlSeconds: 60,
  };
  const key = (spec: Partial<TaskSpec>, taskId = "t1") =>
    fitKey(
      buildContainerSpec({
        config,
        namespace: "berth",
        host: "h",
        workerId: "w",
        taskId,
        tenant: "acme",
        spec: { ...task, ...spec },
        workspacePath: `/ws/${taskId}`,
      }),
    );

  it("does not look at what is set per task: command, environment, files, timeout, name, labels, workspace", () => {
    expect(key({ command: ["echo", "x"], env: { A: "1" }, files: { "a.txt": "x" }, timeoutSeconds: 5, ttlSeconds: 9 }, "t2")).toBe(key({}));
  });

  it("tells apart everything fixed when a container is created: image, each limit, the network", () => {
    const base = key({});
    expect(key({ image: "other:1" })).not.toBe(base);
    expect(key({ limits: { ...task.limits, memoryMb: 513 } })).not.toBe(base);
    expect(key({ limits: { ...task.limits, cpus: 0.5 } })).not.toBe(base);
    expect(key({ limits: { ...task.limits, pids: 255 } })).not.toBe(base);
    expect(key({ limits: { ...task.limits, diskMb: 10 } })).not.toBe(base); // the fsize ulimit
    expect(key({ network: "bridge" })).not.toBe(base);
  });
});
