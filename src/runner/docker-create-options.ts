// What berth asks the engine for when it creates a task's (or a warm pool's) container: the hardening every task
// gets, its limits, its workspace and caches, and nothing else. Pure; docker-runtime.ts sends it.
import type Docker from "dockerode";
import type { ContainerSpec } from "./container-runtime.js";

/**
 * The create request for `spec`. `engineCpus`: the engine's CPU count (a larger CPU limit is capped to it; null when
 * unknown); `cgroupParent`: the task's own parent cgroup (usage accounting), or null; `stdin`: attach stdin (only the
 * warm pool's waiter reads it).
 */
export function toCreateOptions(
  spec: ContainerSpec,
  engineCpus: number | null,
  cgroupParent: string | null,
  stdin: boolean,
): Docker.ContainerCreateOptions {
  // The engine refuses more CPUs than it has; all of them is the same limit, so a larger request is capped there.
  const nanoCpus = engineCpus ? Math.min(spec.limits.nanoCpus, engineCpus * 1e9) : spec.limits.nanoCpus;
  return {
    name: spec.name,
    Image: spec.image,
    Cmd: [...spec.command],
    Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
    User: spec.user,
    WorkingDir: "/workspace",
    Labels: { ...spec.labels },
    Tty: false,
    // Only the warm pool's waiter reads stdin; it is closed after its script (StdinOnce), so the task sees its end.
    OpenStdin: stdin,
    StdinOnce: stdin,
    AttachStdin: stdin,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      Init: true, // docker-init as PID 1: forwards SIGTERM to the task and reaps zombies
      // Mounts (not Binds): a missing source fails instead of being created as root.
      Mounts: [
        { Type: "bind", Source: spec.workspacePath, Target: "/workspace", ReadOnly: false },
        // Caches: never filled from the image (NoCopy); their data is what earlier tasks of the tenant left.
        ...(spec.volumes ?? []).map((v) => ({
          Type: "volume" as const,
          Source: v.volume,
          Target: v.target,
          ReadOnly: false,
          // The engine takes the other fields as optional; the typings do not.
          VolumeOptions: { NoCopy: true } as Docker.MountSettings["VolumeOptions"],
        })),
      ],
      NetworkMode: spec.network,
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": `rw,nosuid,nodev,size=${spec.tmpfsBytes},mode=1777` },
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Privileged: false,
      IpcMode: "private",
      Memory: spec.limits.memoryBytes,
      MemorySwap: spec.limits.memoryBytes, // no swap beyond the memory limit
      NanoCpus: nanoCpus,
      PidsLimit: spec.limits.pids,
      Ulimits: [
        { Name: "nofile", Soft: 4096, Hard: 4096 },
        { Name: "core", Soft: 0, Hard: 0 },
        // The disk limit, per file, enforced by the kernel (the workspace's total is watched by the worker).
        { Name: "fsize", Soft: spec.maxFileBytes, Hard: spec.maxFileBytes },
      ],
      // Output is read through attach; the engine keeps no copy of it on disk.
      LogConfig: { Type: "none", Config: {} },
      ...(spec.runtime ? { Runtime: spec.runtime } : {}),
      ...(cgroupParent ? { CgroupParent: cgroupParent } : {}),
    },
  };
}
