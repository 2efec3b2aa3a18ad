// Task + configuration → the container berth asks the engine for. Pure, so the hardening is unit-tested.
import type { Config } from "../config/config.js";
import type { TaskSpec } from "../domain/task.js";
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
}): ContainerSpec {
  const { config, spec } = input;
  return {
    name: containerName(input.namespace, input.taskId),
    image: spec.image,
    command: spec.command,
    env: spec.env,
    workspacePath: input.workspacePath,
    user: config.worker.runnerUser,
    // The API refuses "bridge" unless allowed; checked again here so no path can widen it.
    network: spec.network === "bridge" && config.worker.allowNetwork ? "bridge" : "none",
    limits: {
      memoryBytes: spec.limits.memoryMb * 1024 * 1024,
      nanoCpus: Math.round(spec.limits.cpus * 1e9),
      pids: spec.limits.pids,
    },
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
