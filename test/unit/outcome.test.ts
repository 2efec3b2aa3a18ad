// classify and failureOutcome (src/runner/outcome.ts): the status, exit code, reason and message a task's record
// gets for each way it can end.
import { pino } from "pino";
import type { TaskSpec } from "../../src/domain/task.js";
import { BerthError, TaskFailure } from "../../src/errors.js";
import { classify, failureOutcome, stopMessage } from "../../src/runner/outcome.js";

const spec: TaskSpec = {
  command: ["true"],
  image: "berth-runner:latest",
  env: {},
  files: {},
  fromTask: null,
  timeoutSeconds: 30,
  limits: { memoryMb: 256, cpus: 1, pids: 64, diskMb: 16 },
  network: "none",
  ttlSeconds: 60,
};
const log = pino({ level: "silent" });

describe("classify", () => {
  it("exit 0 succeeds; any other exit fails with that code and no reason", () => {
    expect(classify({ exitCode: 0, oomKilled: false }, null, spec)).toEqual({
      status: "succeeded",
      exitCode: 0,
      reason: null,
      message: null,
    });
    expect(classify({ exitCode: 3, oomKilled: false }, null, spec)).toEqual({ status: "failed", exitCode: 3, reason: null, message: null });
  });

  it("names the memory limit when the engine saw the OOM killer, not for any exit 137", () => {
    expect(classify({ exitCode: 137, oomKilled: true }, null, spec)).toEqual({
      status: "failed",
      exitCode: 137,
      reason: "oom_killed",
      message: "Killed for exceeding its memory limit of 256 MB.",
    });
    expect(classify({ exitCode: 137, oomKilled: false }, null, spec).reason).toBeNull();
  });

  it("calls a SIGKILL at the memory limit out of memory when the engine missed the kill, and no other", () => {
    const MiB = 1024 ** 2;
    const killed = (peakMemoryBytes: number | null, exitCode = 137) =>
      classify({ exitCode, oomKilled: false, usage: { cpuSeconds: 0.1, peakMemoryBytes } }, null, spec).reason;
    expect(killed(256 * MiB + 262_144)).toBe("oom_killed"); // its cgroup reached the 256 MB limit
    expect(killed(256 * MiB)).toBe("oom_killed");
    expect(killed(200 * MiB)).toBeNull(); // a plain SIGKILL below the limit
    expect(killed(null)).toBeNull(); // peak unknown: only the engine's flag counts
    expect(killed(256 * MiB, 1)).toBeNull(); // not killed by a signal
    expect(classify({ exitCode: 137, oomKilled: false, usage: null }, null, spec).reason).toBeNull();
  });

  it("says why berth stopped it, whatever the exit code", () => {
    expect(classify({ exitCode: 143, oomKilled: false }, "timeout", spec)).toEqual({
      status: "timed_out",
      exitCode: 143,
      reason: "timeout",
      message: "Stopped after its timeout of 30 s.",
    });
    expect(classify({ exitCode: 0, oomKilled: true }, "canceled", spec)).toMatchObject({ status: "canceled", reason: "canceled" });
    expect(classify({ exitCode: 137, oomKilled: false }, "worker_shutdown", spec)).toEqual({
      status: "failed",
      exitCode: 137,
      reason: "worker_shutdown",
      message: stopMessage("worker_shutdown", spec),
    });
    expect(stopMessage("worker_lost", spec)).toMatch(/cannot run twice/);
  });
});

describe("classify: the disk limit", () => {
  const MiB = 1024 * 1024;
  it("says how much the workspace held when the watcher stopped it", () => {
    expect(classify({ exitCode: 137, oomKilled: false }, "disk_limit_exceeded", spec, { atStop: 20 * MiB, atEnd: 21 * MiB })).toEqual({
      status: "failed",
      exitCode: 137,
      reason: "disk_limit_exceeded",
      message:
        "Stopped: its workspace held 21.00 MB, past its disk limit of 16 MB (limits.diskMb); no single file may be larger than the limit either.",
    });
  });

  it("fails a task whose workspace is past the limit when it ends, even with exit 0", () => {
    expect(classify({ exitCode: 0, oomKilled: false }, null, spec, { atStop: null, atEnd: 16 * MiB + 4096 })).toMatchObject({
      status: "failed",
      reason: "disk_limit_exceeded",
      message: expect.stringMatching(/^When it ended, its workspace held 16\.00 MB, past its disk limit of 16 MB/),
    });
    expect(classify({ exitCode: 0, oomKilled: false }, null, spec, { atStop: null, atEnd: 16 * MiB })).toMatchObject({
      status: "succeeded",
    });
  });

  it("keeps a timeout or cancel as the reason even past the limit", () => {
    expect(classify({ exitCode: 143, oomKilled: false }, "timeout", spec, { atStop: null, atEnd: 99 * MiB }).reason).toBe("timeout");
  });
});

describe("failureOutcome", () => {
  it("keeps a TaskFailure's reason and message; a canceled one is canceled, not failed", () => {
    expect(failureOutcome(new TaskFailure("image_not_found", "No image x."), log)).toEqual({
      status: "failed",
      exitCode: null,
      reason: "image_not_found",
      message: "No image x.",
    });
    expect(failureOutcome(new TaskFailure("canceled", "Canceled."), log).status).toBe("canceled");
  });

  it("blames Docker when the engine is unreachable, berth otherwise", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED /var/run/docker.sock"), { code: "ECONNREFUSED" });
    expect(failureOutcome(refused, log)).toMatchObject({ status: "failed", reason: "docker_unavailable" });
    expect(failureOutcome(new BerthError("dependency_unavailable", "Docker is down."), log).reason).toBe("docker_unavailable");
    expect(failureOutcome(new Error("something else"), log)).toEqual({
      status: "failed",
      exitCode: null,
      reason: "internal_error",
      message: "something else",
    });
  });
});
