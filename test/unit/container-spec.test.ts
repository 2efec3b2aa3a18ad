import { loadConfig } from "../../src/config/config.js";
import { buildContainerSpec } from "../../src/runner/container-spec.js";

const spec = {
  command: ["true"],
  image: "berth-runner:latest",
  env: { A: "1" },
  files: {},
  fromTask: null,
  timeoutSeconds: 10,
  limits: { memoryMb: 256, cpus: 1.5, pids: 64, diskMb: 100 },
  network: "bridge" as const,
  ttlSeconds: 60,
};
const build = (env: Record<string, string>) =>
  buildContainerSpec({
    config: loadConfig(env),
    namespace: "ns",
    host: "h",
    workerId: "w1",
    taskId: "abcdefgh12",
    tenant: "acme",
    spec,
    workspacePath: "/ws/task-1-abcdefgh12",
  });

describe("buildContainerSpec", () => {
  it("names the container by task and labels it as berth's", () => {
    const s = build({});
    expect(s.name).toBe("ns-task-abcdefgh12");
    expect(s.labels).toEqual({
      "berth.managed": "true",
      "berth.namespace": "ns",
      "berth.task-id": "abcdefgh12",
      "berth.tenant": "acme",
      "berth.host": "h",
      "berth.worker": "w1",
    });
  });

  it("turns limits into engine units and runs as the configured user", () => {
    const s = build({ BERTH_RUNNER_USER: "2000:3000" });
    expect(s.limits).toEqual({ memoryBytes: 256 * 1024 * 1024, nanoCpus: 1_500_000_000, pids: 64 });
    expect(s.user).toBe("2000:3000");
  });

  it("tells the task who it is and where its workspace is, whatever its own env says", () => {
    expect(build({}).env).toEqual({ A: "1", BERTH_TASK_ID: "abcdefgh12", BERTH_WORKSPACE: "/workspace" });
    const sneaky = buildContainerSpec({
      config: loadConfig({}),
      namespace: "ns",
      host: "h",
      workerId: "w1",
      taskId: "abcdefgh12",
      tenant: "acme",
      spec: { ...spec, env: { BERTH_TASK_ID: "someone-else", BERTH_WORKSPACE: "/etc" } },
      workspacePath: "/ws/task-1-abcdefgh12",
    });
    expect(sneaky.env).toEqual({ BERTH_TASK_ID: "abcdefgh12", BERTH_WORKSPACE: "/workspace" });
  });

  it("never gives a task network unless the server allows it", () => {
    expect(build({}).network).toBe("none");
    expect(build({ BERTH_ALLOW_NETWORK: "true" }).network).toBe("bridge");
  });
});
