// Task + configuration → the container berth asks the engine for. Pure, so the hardening is unit-tested.
import type { Config } from "../config/config.js";
import { diskLimitBytes, ENGINE_MIN, identityEnv, toNanoCpus, type TaskSpec } from "../domain/task.js";
import type { ContainerSpec } from "./container-runtime.js";
import { containerName, taskLabels } from "./labels.js";

export function buildContainerSpec(input: {
  config: Config;
  namespace: string;
  host: string;
  workerId: string;
  taskId: string;
  tenant: string;
  spec: TaskSpec;
  workspacePath: string;
  /** The tenant's caches made ready for the task (runner/caches.ts), mounted read-write at their targets. */
  caches?: readonly { volume: string; target: string }[];
}): ContainerSpec {
  const { config, spec } = input;
  return {
    name: containerName(input.namespace, input.taskId),
    image: spec.image,
    command: spec.command,
    // Berth's own variables last: a spec stored before they were reserved cannot override them either.
    env: { ...spec.env, ...identityEnv(input.taskId) },
    workspacePath: input.workspacePath,
    volumes: (input.caches ?? []).map((c) => ({ volume: c.volume, target: c.target })),
    user: config.worker.runnerUser,
    // The API refuses "bridge" unless allowed; checked again here so no path can widen it.
    network: spec.network === "bridge" && config.worker.allowNetwork ? "bridge" : "none",
    limits: engineLimits(spec.limits),
    maxFileBytes: diskLimitBytes(spec.limits),
    tmpfsBytes: config.worker.tmpfsMb * 1024 * 1024,
    runtime: config.worker.runtime,
    labels: taskLabels({
      namespace: input.namespace,
      taskId: input.taskId,
      tenant: input.tenant,
      host: input.host,
      workerId: input.workerId,
    }),
  };
}

/**
 * Limits in engine units, never below what the engine accepts. The engine reads 0 as "unlimited", so a value that
 * slipped past validation (a record queued before a rule existed, a rounding) is raised to the smallest real limit
 * instead: stricter than asked, never unlimited, never a run-time error.
 */
export function engineLimits(limits: TaskSpec["limits"]): ContainerSpec["limits"] {
  const atLeast = (min: number, value: number) => (Number.isFinite(value) && value > min ? value : min);
  return {
    memoryBytes: atLeast(ENGINE_MIN.memoryBytes, Math.floor(limits.memoryMb * 1024 * 1024)),
    nanoCpus: atLeast(ENGINE_MIN.nanoCpus, toNanoCpus(limits.cpus)),
    pids: atLeast(ENGINE_MIN.pids, Math.floor(limits.pids)),
  };
}
