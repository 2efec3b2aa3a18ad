// The warm pool: containers each worker keeps started ahead, per profile (config/warm-pool.ts), so that a task that
// fits one skips creating and starting a container. Each runs the waiter (waiter.ts) with a fresh, empty pool
// directory at /workspace, and everything else exactly as a task's container of that profile would have it (the
// same ContainerSpec: hardening, limits, user, no network). A task claims one by renaming the pool directory to its
// workspace (the bind mount follows the directory), writing its inputs and sending the waiter its command.
// A container serves one task and is then removed like any task's; the pool starts another in the background.
// Containers not claimed within BERTH_WARM_POOL_MAX_AGE_SECONDS are replaced; closing removes the unclaimed ones.
import { randomBytes } from "node:crypto";
import { readdir, rmdir } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config/config.js";
import type { WarmProfile } from "../config/warm-pool.js";
import { makePoolDir, parseRunnerUser, POOL_DIR, removeTree } from "../workspace/workspace.js";
import type { ContainerHandle, ContainerRuntime, ContainerSpec, OutputHandler, WaitingContainer } from "./container-runtime.js";
import { buildContainerSpec } from "./container-spec.js";
import { poolContainerName, poolLabels } from "./labels.js";
import { waiterCommand, warmStartInput } from "./waiter.js";

export interface WarmPoolOptions {
  readonly runtime: ContainerRuntime;
  readonly config: Config;
  readonly namespace: string;
  readonly host: string;
  readonly workerId: string;
  readonly log: Logger;
  /** Run before each container is created (the workspace root's nosuid,nodev mount). */
  readonly beforeCreate?: () => Promise<void>;
}

/** A claimed container, until its task has begun (or the claim is given up). */
export interface WarmLease {
  readonly containerId: string;
  readonly profile: string;
  /** Its pool directory, to become the task's workspace (workspace.ts adoptWorkspace). */
  readonly dir: string;
  /** Gives the container the task container's name (409 when that exists: the task is being run elsewhere). */
  rename(name: string): Promise<void>;
  /** Sends the waiter the task's command and environment; from then on the container is the task's. */
  begin(command: readonly string[], env: Readonly<Record<string, string>>, onOutput: OutputHandler): Promise<ContainerHandle>;
  /** Removes the container (the claim could not be completed); the task then takes the cold path, or fails. */
  discard(): Promise<void>;
}

export interface WarmPoolStats {
  /** Claims served by a container that was ready. */
  readonly hits: number;
  /** Claims served by a container that was still starting when the task asked. */
  readonly waited: number;
  /** Tasks that fit a profile but found no container (or a broken one) and took the cold path. */
  readonly misses: number;
  /** Tasks that fit no profile. */
  readonly unfit: number;
  readonly idle: number;
  readonly starting: number;
}

type SlotState = "starting" | "idle" | "reserved" | "leased" | "gone";

interface Slot {
  readonly name: string;
  readonly profile: Profile;
  readonly dir: string;
  readonly nonce: string;
  state: SlotState;
  container: WaitingContainer | null;
  exited: boolean;
  ready: Promise<boolean>;
  timer?: NodeJS.Timeout;
  disposing?: Promise<void>;
}

interface Profile {
  readonly def: WarmProfile;
  /** The container spec of this profile (name, command, env, labels and workspace set per container). */
  readonly spec: ContainerSpec;
  readonly key: string;
  readonly slots: Set<Slot>;
  failures: number;
  retry?: NodeJS.Timeout;
}

/** Fields of a ContainerSpec set per task: everything else is fixed when a container is created. */
const PER_TASK: readonly (keyof ContainerSpec)[] = ["name", "command", "env", "labels", "workspacePath"];

/** What a container must have been created with to serve `spec`: every field but the per-task ones, as text. */
export function fitKey(spec: ContainerSpec): string {
  const fixed: Record<string, unknown> = { ...spec };
  for (const k of PER_TASK) delete fixed[k];
  return stableJson(fixed);
}

const stableJson = (v: unknown): string =>
  v !== null && typeof v === "object" && !Array.isArray(v)
    ? `{${Object.keys(v)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
        .join(",")}}`
    : JSON.stringify(v);

/** Longest pause between attempts to start a profile's containers after failures. */
const MAX_RETRY_MS = 60_000;

export class WarmPool {
  private readonly profiles: Profile[];
  private readonly byKey = new Map<string, Profile>();
  /** Containers this pool started that no task has removed yet (the orphan sweep leaves them alone). */
  private readonly owned = new Set<string>();
  /** Names of the containers being created and started (not yet in `owned`). */
  private readonly creating = new Set<string>();
  private readonly group: string;
  private closing = false;
  private counts = { hits: 0, waited: 0, misses: 0, unfit: 0 };

  constructor(private readonly opts: WarmPoolOptions) {
    const { config } = opts;
    this.group = path.join(opts.namespace, opts.workerId);
    this.profiles = config.warmPool.profiles.map((def) => {
      const spec = buildContainerSpec({
        config,
        namespace: opts.namespace,
        host: opts.host,
        workerId: opts.workerId,
        taskId: "pool",
        tenant: "",
        spec: {
          command: [],
          image: def.image,
          env: {},
          files: {},
          fromTask: null,
          timeoutSeconds: 1,
          limits: def.limits,
          network: "none",
          ttlSeconds: 1,
        },
        workspacePath: "",
      });
      return { def, spec, key: fitKey(spec), slots: new Set<Slot>(), failures: 0 };
    });
    for (const p of this.profiles) this.byKey.set(p.key, p);
  }

  get size(): number {
    return this.profiles.reduce((n, p) => n + p.def.size, 0);
  }

  /** Starts filling every profile (in the background). */
  start(): void {
    if (this.profiles.length === 0) return;
    this.opts.log.info(
      { profiles: this.profiles.map((p) => ({ name: p.def.name, image: p.def.image, limits: p.def.limits, size: p.def.size })) },
      "warm pool starting",
    );
    for (const p of this.profiles) this.refill(p);
  }

  /**
   * Whether the pool is starting this container, or started it and no task has removed it since. (One it could not
   * remove is no longer its own: the orphan sweep takes it.)
   */
  owns(container: { readonly id: string; readonly name: string }): boolean {
    return this.owned.has(container.id) || this.creating.has(container.name);
  }

  stats(): WarmPoolStats {
    const slots = this.profiles.flatMap((p) => [...p.slots]);
    return {
      ...this.counts,
      idle: slots.filter((s) => s.state === "idle").length,
      starting: slots.filter((s) => s.state === "starting" || s.state === "reserved").length,
    };
  }

  /**
   * A container for a task whose container would be `spec`: one that is ready, else one still starting (it is
   * further along than a new one would be). Null when the task fits no profile or none can be had: the cold path.
   */
  async take(spec: ContainerSpec): Promise<WarmLease | null> {
    const p = this.closing ? undefined : this.byKey.get(fitKey(spec));
    if (!p || !warmStartInput({ command: spec.command, env: spec.env, nonce: "0".repeat(32), imageSetsPwd: false })) {
      this.counts.unfit++;
      return null;
    }
    for (const slot of p.slots) {
      if (slot.state !== "idle") continue;
      if (this.usable(slot)) {
        this.counts.hits++;
        return this.lease(slot);
      }
      void this.dispose(slot);
    }
    const starting = [...p.slots].find((s) => s.state === "starting");
    if (starting) {
      starting.state = "reserved";
      this.refill(p);
      if ((await starting.ready) && !this.closing && this.usable(starting)) {
        this.counts.waited++;
        return this.lease(starting);
      }
      void this.dispose(starting);
    }
    this.counts.misses++;
    this.refill(p);
    return null;
  }

  /** Stops starting containers and removes every unclaimed one with its directory. Claimed ones are their tasks'. */
  async close(): Promise<void> {
    this.closing = true;
    const slots = this.profiles.flatMap((p) => {
      clearTimeout(p.retry);
      return [...p.slots];
    });
    await Promise.all(
      slots.map(async (s) => {
        await s.ready;
        await this.dispose(s);
      }),
    );
    // Empty once every directory was removed or claimed; a claim still being completed keeps it.
    await rmdir(path.join(this.opts.config.dirs.workspaces, POOL_DIR, this.group)).catch(() => undefined);
  }

  private usable(slot: Slot): boolean {
    return slot.container !== null && !slot.exited && !slot.container.spoiled && slot.state !== "gone";
  }

  private lease(slot: Slot): WarmLease {
    const p = slot.profile;
    const c = slot.container as WaitingContainer;
    slot.state = "leased";
    clearTimeout(slot.timer);
    p.slots.delete(slot);
    const imageSetsPwd = c.env.some((e) => e.startsWith("PWD="));
    return {
      containerId: c.id,
      profile: p.def.name,
      dir: slot.dir,
      rename: (name) => c.rename(name),
      begin: async (command, env, onOutput) => {
        const input = warmStartInput({ command, env, nonce: slot.nonce, imageSetsPwd });
        if (!input) throw new Error("this command cannot be sent to a warm container");
        // The replacement starts once the claim is done, so it does not compete with the claim for the engine.
        const handle = await c.begin(input, onOutput).finally(() => this.refill(p));
        return new ReleasingHandle(handle, () => this.owned.delete(c.id));
      },
      discard: () => this.dispose(slot).then(() => this.refill(p)),
    };
  }

  /** Starts containers until the profile has as many unclaimed ones as it should (unless retrying after failures). */
  private refill(p: Profile): void {
    if (this.closing || p.retry) return;
    let unclaimed = [...p.slots].filter((s) => s.state === "starting" || s.state === "idle").length;
    while (unclaimed++ < p.def.size) this.startSlot(p);
  }

  private startSlot(p: Profile): void {
    const name = randomBytes(6).toString("hex");
    const { config } = this.opts;
    const slot: Slot = {
      name,
      profile: p,
      dir: path.join(config.dirs.workspaces, POOL_DIR, this.group, name),
      nonce: randomBytes(16).toString("hex"),
      state: "starting",
      container: null,
      exited: false,
      ready: Promise.resolve(false),
    };
    p.slots.add(slot);
    slot.ready = (async () => {
      try {
        await this.opts.beforeCreate?.();
        await makePoolDir({ root: config.dirs.workspaces, group: this.group, name, runner: parseRunnerUser(config.worker.runnerUser) });
        const containerName = poolContainerName(this.opts.namespace, name);
        this.creating.add(containerName);
        const c = await this.opts.runtime
          .startWaiting({
            ...p.spec,
            name: containerName,
            command: waiterCommand(slot.nonce),
            env: {},
            workspacePath: slot.dir,
            labels: poolLabels({ namespace: this.opts.namespace, host: this.opts.host, workerId: this.opts.workerId, profile: p.def.name }),
          })
          .then((started) => {
            this.owned.add(started.id); // before it leaves `creating`: never neither
            return started;
          })
          .finally(() => this.creating.delete(containerName));
        slot.container = c;
        const exited = () => {
          slot.exited = true;
          if (slot.state === "idle") this.broken(slot, "its waiter exited before any task claimed it");
        };
        c.exitConfirmed.then(exited, exited);
        if (this.closing || slot.state === "gone") return false;
        if (slot.state === "starting") slot.state = "idle";
        p.failures = 0;
        slot.timer = setTimeout(() => this.recycle(slot), config.warmPool.maxAgeSeconds * 1000);
        slot.timer.unref();
        return true;
      } catch (err) {
        this.backOff(p, err);
        await this.dispose(slot);
        return false;
      }
    })();
  }

  /** An unclaimed container past its age: replaced by a fresh one. */
  private recycle(slot: Slot): void {
    if (slot.state !== "idle") return;
    void this.dispose(slot).then(() => this.refill(slot.profile));
  }

  private broken(slot: Slot, why: string): void {
    this.backOff(slot.profile, new Error(why));
    void this.dispose(slot);
  }

  /** After a failure, the profile's next container is started later, the longer the more failures in a row. */
  private backOff(p: Profile, err: unknown): void {
    p.failures++;
    const delayMs = Math.min(MAX_RETRY_MS, 1000 * 2 ** (p.failures - 1));
    const log = { err, profile: p.def.name, image: p.def.image, retryInMs: delayMs };
    if (p.failures === 1) this.opts.log.warn(log, "could not start a warm container; tasks of this profile start cold meanwhile");
    else this.opts.log.debug(log, "could not start a warm container");
    if (this.closing || p.retry) return;
    p.retry = setTimeout(() => {
      p.retry = undefined;
      this.refill(p);
    }, delayMs);
    p.retry.unref();
  }

  /** Removes the slot's container, then its directory (gone already if a task adopted it). Idempotent. */
  private dispose(slot: Slot): Promise<void> {
    slot.disposing ??= (async () => {
      slot.state = "gone";
      clearTimeout(slot.timer);
      slot.profile.slots.delete(slot);
      const c = slot.container;
      if (c) {
        // One that cannot be removed now is left to the orphan sweep, which takes it once this pool lets it go.
        await c.remove().catch((err: unknown) => this.opts.log.warn({ err, containerId: c.id }, "could not remove a warm container"));
        this.owned.delete(c.id);
      }
      await removeTree(slot.dir).catch((err: unknown) => this.opts.log.warn({ err, dir: slot.dir }, "could not remove a pool directory"));
    })();
    return slot.disposing;
  }
}

/**
 * Removes the pool directories of this namespace's workers that are gone (after the orphan sweep removed their
 * containers): each worker's are `<root>/.pool/<namespace>/<worker id>/`.
 */
export async function removeStalePoolDirs(opts: {
  root: string;
  namespace: string;
  isAlive: (workerId: string) => Promise<boolean>;
}): Promise<void> {
  const dir = path.join(opts.root, POOL_DIR, opts.namespace);
  const workers = await readdir(dir).catch(() => [] as string[]);
  for (const worker of workers) {
    if (!(await opts.isAlive(worker))) await removeTree(path.join(dir, worker));
  }
}

/** A task's handle on a warm container: the pool stops claiming the container once the task has removed it. */
class ReleasingHandle implements ContainerHandle {
  constructor(
    private readonly inner: ContainerHandle,
    private readonly release: () => void,
  ) {}

  get id() {
    return this.inner.id;
  }
  get exitConfirmed() {
    return this.inner.exitConfirmed;
  }
  get exited() {
    return this.inner.exited;
  }
  get outputEnded() {
    return this.inner.outputEnded;
  }
  stop(graceSeconds: number) {
    return this.inner.stop(graceSeconds);
  }
  kill() {
    return this.inner.kill();
  }
  async remove() {
    try {
      await this.inner.remove();
    } finally {
      this.release();
    }
  }
}
