// The dockerode adapter: the only file in src/ that imports dockerode.
import Docker from "dockerode";
import type DockerModem from "docker-modem";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { BerthError, TaskFailure, statusOf } from "../errors.js";
import { DockerFrameParser } from "../logs/demux.js";
import { CgroupAccounting, type EngineCgroups, isTaskCgroupParent } from "./cgroup-usage.js";
import type {
  ContainerExit,
  ContainerHandle,
  ContainerRuntime,
  ContainerSpec,
  OutputHandler,
  VolumeSpec,
  WaitingContainer,
} from "./container-runtime.js";
import { canHijack, type EngineAddress, hijackAttach } from "./docker-hijack.js";
import { toCreateOptions } from "./docker-create-options.js";

/** Newest Engine API this adapter is written for; older engines are spoken to in their own version. */
const MAX_API_VERSION = "1.47";
/** Oldest Engine API berth can use: wait conditions, and wait headers sent as soon as the wait is registered. */
const MIN_API_VERSION = "1.30";
/** How long a removal waits for another removal of the same container that is already under way. */
const REMOVAL_WAIT_MS = 30_000;

/**
 * A dockerode client pinned to an API version negotiated with the engine (unversioned paths are deprecated,
 * and new engines refuse very old clients). Honours DOCKER_HOST like the docker CLI.
 */
export async function createDockerClient(): Promise<Docker> {
  const probe = new Docker();
  let version: string;
  try {
    const v = (await probe.version()) as { ApiVersion?: string };
    version = v.ApiVersion ?? "1.41";
  } catch (err) {
    throw new BerthError(
      "dependency_unavailable",
      "Docker is not answering; is dockerd running and DOCKER_HOST right?",
      {},
      { cause: err },
    );
  }
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    throw new BerthError(
      "dependency_unavailable",
      `Docker Engine API ${MIN_API_VERSION} or newer is needed (Docker 17.06+); this engine speaks ${version}.`,
    );
  }
  const pick = compareVersions(version, MAX_API_VERSION) <= 0 ? version : MAX_API_VERSION;
  return new Docker({ version: `v${pick}` });
}

const compareVersions = (a: string, b: string) => {
  const [a1 = 0, a2 = 0] = a.split(".").map(Number);
  const [b1 = 0, b2 = 0] = b.split(".").map(Number);
  return a1 - b1 || a2 - b2;
};

interface EngineFacts {
  /** The engine's CPU count (its upper bound for NanoCpus). */
  readonly cpus: number | null;
  /** How tasks' resource usage is read (cgroup-usage.ts). */
  readonly accounting: CgroupAccounting;
}

export class DockerRuntime implements ContainerRuntime {
  /** What the engine says about itself, asked once; asked again on the next task if it failed. */
  private facts: Promise<EngineFacts | null> | undefined;
  /** Where docker-modem connects, for the hijacked attach of warm containers (its socket path is found lazily). */
  private address: Promise<EngineAddress> | undefined;
  /** The API version docker-modem speaks ("v1.41"), for requests made without it. */
  private readonly apiVersion: string;

  constructor(private readonly docker: Docker) {
    this.apiVersion = (docker.modem as unknown as { version?: string }).version ?? "v1.41";
    void this.engineFacts();
  }

  private engineAddress(): Promise<EngineAddress> {
    const modem = this.docker.modem as unknown as Omit<EngineAddress, "socketPath"> & {
      socketPath?: unknown;
      getSocketPath(): Promise<string | undefined> | undefined;
    };
    this.address ??= Promise.resolve(modem.socketPath ? modem.getSocketPath() : undefined).then((socketPath) => ({
      socketPath,
      protocol: modem.protocol,
      host: modem.host,
      port: modem.port,
      ca: modem.ca,
      cert: modem.cert,
      key: modem.key,
    }));
    return this.address;
  }

  private engineFacts(): Promise<EngineFacts | null> {
    this.facts ??= this.docker.info().then(
      (info: { NCPU?: unknown; CgroupDriver?: unknown; CgroupVersion?: unknown }) => {
        const cgroups: EngineCgroups | null =
          typeof info.CgroupDriver === "string" ? { driver: info.CgroupDriver, version: info.CgroupVersion === "2" ? 2 : 1 } : null;
        return {
          cpus: typeof info.NCPU === "number" && info.NCPU > 0 ? info.NCPU : null,
          accounting: new CgroupAccounting(cgroups),
        };
      },
      () => {
        this.facts = undefined;
        return null;
      },
    );
    return this.facts;
  }

  async run(spec: ContainerSpec, onOutput: OutputHandler): Promise<ContainerHandle> {
    const started = await this.launch(spec, null, onOutput);
    return new DockerContainer(started.container, started.exitConfirmed, started.outputEnded, started.cgroup);
  }

  async startWaiting(spec: ContainerSpec): Promise<WaitingContainer> {
    const address = await this.engineAddress();
    if (!canHijack(address)) {
      throw new BerthError("dependency_unavailable", "The warm pool needs the engine on a unix socket or http(s) (DOCKER_HOST).");
    }
    let spoiled = false;
    const started = await this.launch(spec, address, () => {
      spoiled = true;
    });
    // Its own parent cgroup (named after the pool container) holds the one task it serves: the usage is that task's.
    const releaseCgroup = () =>
      started.cgroup ? started.cgroup.accounting.release(started.cgroup.cgroupParent).catch(() => undefined) : undefined;
    try {
      const info = await started.container.inspect();
      return {
        id: started.container.id,
        env: info.Config.Env ?? [],
        exitConfirmed: started.exitConfirmed,
        get spoiled() {
          return spoiled;
        },
        rename: (name) => started.container.rename({ name }).then(() => undefined),
        begin: async (input, onOutput) => {
          const stdin = started.stream as Socket;
          await new Promise<void>((resolve, reject) => {
            stdin.write(input, (err) => (err ? reject(err) : resolve()));
          });
          started.output.handler = onOutput;
          stdin.end();
          return new DockerContainer(started.container, started.exitConfirmed, started.outputEnded, started.cgroup);
        },
        remove: async () => {
          await removeContainer(started.container);
          await releaseCgroup();
        },
      };
    } catch (err) {
      started.stream.destroy();
      await removeContainer(started.container);
      await releaseCgroup();
      throw err;
    }
  }

  /**
   * Creates the container, attaches to its output (and stdin, hijacked, with `stdin`) and registers the exit wait
   * before starting it (as the docker CLI does): a task that exits in a millisecond still has all its output, and
   * its exit is reported with no request after start. Output goes to `output.handler` (at first `onOutput`).
   * With `stdin` (where the engine listens), stdin is attached too.
   */
  private async launch(spec: ContainerSpec, stdin: EngineAddress | null, onOutput: OutputHandler) {
    const facts = await this.engineFacts();
    const accounting = facts?.accounting ?? null;
    const cgroupParent = accounting?.parentFor(spec.name) ?? null;
    // A parent left by an earlier attempt of the same task would hold that attempt's usage.
    if (accounting && cgroupParent) await accounting.release(cgroupParent).catch(() => undefined);
    const cgroup = accounting && cgroupParent ? { accounting, cgroupParent } : null;
    const container = await this.create(spec, facts?.cpus ?? null, cgroupParent, stdin !== null);
    const [attached, waiting] = await Promise.allSettled([
      stdin
        ? hijackAttach(stdin, this.apiVersion, container.id)
        : (container.attach({ stream: true, stdout: true, stderr: true }) as Promise<unknown> as Promise<Readable>),
      waitForNextExit(container),
    ]);
    const raw: Readable | Socket | undefined = attached.status === "fulfilled" ? attached.value : undefined;
    const waitResponse = waiting.status === "fulfilled" ? waiting.value : undefined;
    try {
      if (!raw) throw (attached as PromiseRejectedResult).reason;
      if (!waitResponse) throw (waiting as PromiseRejectedResult).reason;
      const output: { handler: OutputHandler } = { handler: onOutput };
      const parser = new DockerFrameParser((stream, chunk) => output.handler(stream, chunk));
      const outputEnded = new Promise<void>((resolve) => {
        raw.on("data", (chunk: Buffer) => parser.push(chunk));
        raw.once("end", () => resolve());
        raw.once("close", () => resolve());
        raw.once("error", () => resolve());
      });
      const exitConfirmed = readExitCode(waitResponse);
      exitConfirmed.catch(() => undefined); // observed by the handle's owner, or dropped on the failure path below
      await container.start();
      // An attach stream that outlives its container would hang the task: give it a few seconds after exit.
      void exitConfirmed.then(
        () => setTimeout(() => raw.destroy(), 5000).unref(),
        () => raw.destroy(),
      );
      return { container, stream: raw, output, outputEnded, exitConfirmed, cgroup };
    } catch (err) {
      raw?.destroy();
      waitResponse?.destroy();
      // Whoever creates a resource removes it on its own failure path; nobody else knows it exists.
      await removeContainer(container);
      throw err;
    }
  }

  private async create(
    spec: ContainerSpec,
    engineCpus: number | null,
    cgroupParent: string | null,
    stdin: boolean,
  ): Promise<Docker.Container> {
    try {
      return await this.docker.createContainer(toCreateOptions(spec, engineCpus, cgroupParent, stdin));
    } catch (err) {
      const status = statusOf(err);
      if (status === 404) {
        throw new TaskFailure(
          "image_not_found",
          `Image "${spec.image}" is not present on this Docker host; build or pull it there first.`,
          { cause: err },
        );
      }
      if (status === 409) {
        throw new BerthError(
          "wrong_state",
          `A container named ${spec.name} already exists: this task is already being run.`,
          { name: spec.name },
          { cause: err },
        );
      }
      throw err;
    }
  }

  async findByLabels(labels: Readonly<Record<string, string>>) {
    const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const found = await this.docker.listContainers({ all: true, filters: { label } });
    return found.map((c) => ({
      id: c.Id,
      name: (c.Names?.[0] ?? "").replace(/^\//, ""),
      labels: c.Labels ?? {},
      running: c.State === "running",
    }));
  }

  async removeById(id: string, graceSeconds = 0): Promise<boolean> {
    const c = this.docker.getContainer(id);
    // A task's own parent cgroup (cgroup-usage.ts) goes with it, also when its worker is not the one removing it.
    const parent = await c.inspect().then(
      (info) => info.HostConfig?.CgroupParent ?? "",
      (err: unknown) => (statusOf(err) === 404 ? null : ""),
    );
    if (parent === null) return false; // gone already
    if (graceSeconds > 0) await ignoreStatus(c.stop({ t: graceSeconds }), 304, 404);
    const removed = await removeContainer(c);
    const accounting = (await this.engineFacts())?.accounting;
    if (accounting && isTaskCgroupParent(parent)) await accounting.release(parent).catch(() => undefined);
    return removed;
  }

  async ensureVolume(spec: VolumeSpec): Promise<void> {
    const options = { type: "none", o: "bind", device: spec.directory };
    const same = (v: { Labels?: Record<string, string> | null; Options?: Record<string, string> | null }) =>
      v.Options?.device === spec.directory &&
      v.Options?.o === "bind" &&
      Object.entries(spec.labels).every(([k, value]) => v.Labels?.[k] === value);
    const inspect = () =>
      this.docker
        .getVolume(spec.name)
        .inspect()
        .catch((err: unknown) => {
          if (statusOf(err) === 404) return null;
          throw err;
        });
    let found = await inspect();
    if (found === null) {
      // The local driver binds the directory: its data lives where berth can measure and remove it. Creating a
      // name that exists (made meanwhile by another worker) answers with that volume: it is checked like any.
      await this.docker.createVolume({ Name: spec.name, Driver: "local", DriverOpts: options, Labels: { ...spec.labels } });
      found = await inspect();
    }
    if (found && same(found)) return;
    throw new BerthError("wrong_state", `Docker volume ${spec.name} exists but is not the one berth made for it; remove it by hand.`, {
      volume: spec.name,
    });
  }

  async removeVolume(name: string): Promise<"removed" | "in_use" | "missing"> {
    try {
      await this.docker.getVolume(name).remove();
      return "removed";
    } catch (err) {
      if (statusOf(err) === 404) return "missing";
      if (statusOf(err) === 409) return "in_use";
      throw err;
    }
  }

  async findVolumes(labels: Readonly<Record<string, string>>) {
    const label = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
    const found = (await this.docker.listVolumes({ filters: { label } })) as {
      Volumes?: { Name: string; Labels?: Record<string, string> | null; Options?: Record<string, string> | null }[] | null;
    };
    return (found.Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {}, directory: v.Options?.device ?? null }));
  }

  async ping(): Promise<void> {
    try {
      await Promise.race([
        this.docker.ping(),
        new Promise((_, reject) => setTimeout(() => reject(new Error("no answer within 3 s")), 3000).unref()),
      ]);
    } catch (err) {
      throw new BerthError(
        "dependency_unavailable",
        "Docker is not answering; is dockerd running and DOCKER_HOST right?",
        {},
        { cause: err },
      );
    }
  }
}

/**
 * POST /containers/{id}/wait?condition=next-exit, resolved once the response headers arrive: from API 1.30 the
 * engine sends them as soon as the wait is registered, so an exit after this point is never missed. The body
 * (the exit status) follows when the container exits.
 */
function waitForNextExit(container: Docker.Container): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    (container.modem as DockerModem).dial(
      {
        path: `/containers/${container.id}/wait?`,
        method: "POST",
        options: { condition: "next-exit" },
        isStream: true,
        statusCodes: { 200: true, 400: "bad parameter", 404: "no such container", 500: "server error" },
      },
      (err: unknown, res: unknown) => (err ? reject(err) : resolve(res as IncomingMessage)),
    );
  });
}

/**
 * The exit code from a wait response. Only a complete body with a status and no error confirms the exit; a cut
 * connection or an engine-side error (its wait was canceled, e.g. while shutting down) does not.
 */
async function readExitCode(res: IncomingMessage): Promise<number> {
  let body: { StatusCode?: unknown; Error?: { Message?: string } | null };
  try {
    body = JSON.parse(await text(res)) as typeof body;
  } catch (err) {
    throw new BerthError(
      "dependency_unavailable",
      "Docker stopped answering while the task ran; its exit could not be confirmed.",
      {},
      { cause: err },
    );
  }
  const code = body.StatusCode;
  if (body.Error?.Message || typeof code !== "number" || !Number.isInteger(code) || code < 0) {
    throw new BerthError(
      "dependency_unavailable",
      `Docker could not confirm the container's exit: ${body.Error?.Message ?? `status ${String(code)}`}.`,
    );
  }
  return code;
}

class DockerContainer implements ContainerHandle {
  readonly exited: Promise<ContainerExit>;

  constructor(
    private readonly container: Docker.Container,
    readonly exitConfirmed: Promise<number>,
    readonly outputEnded: Promise<void>,
    /** The container's own parent cgroup, where its usage is read after it exited. */
    private readonly cgroup: { accounting: CgroupAccounting; cgroupParent: string } | null,
  ) {
    this.exited = exitConfirmed.then(async (exitCode) => {
      const [info, usage] = await Promise.all([
        container.inspect(),
        cgroup ? cgroup.accounting.read(cgroup.cgroupParent).catch(() => null) : null,
      ]);
      return { exitCode, oomKilled: info.State.OOMKilled === true, usage };
    });
    // Observed by the caller; never an unhandled rejection here.
    exitConfirmed.catch(() => undefined);
    this.exited.catch(() => undefined);
  }

  get id(): string {
    return this.container.id;
  }

  async stop(graceSeconds: number): Promise<void> {
    await ignoreStatus(this.container.stop({ t: graceSeconds }), 304, 404); // 304: already stopped
  }

  async kill(): Promise<void> {
    await ignoreStatus(this.container.kill({ signal: "SIGKILL" }), 404, 409); // 409: not running any more
  }

  async remove(): Promise<void> {
    await removeContainer(this.container);
    if (this.cgroup) {
      const { accounting, cgroupParent } = this.cgroup;
      // The usage is read (or given up) before its cgroup goes; the container is gone, so its exit is reported soon.
      await Promise.race([this.exited.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
      await accounting.release(cgroupParent).catch(() => undefined);
    }
  }
}

/**
 * Removes a container with its anonymous volumes; returns once it is gone, true when this call removed it.
 * Idempotent: when another removal of it is under way (the engine answers 409 at once, while the container is still
 * listed), waits for that one to end (bounded), then makes sure it is gone; throws if it is not (that removal
 * failed), so the caller's retries and logs apply.
 */
export async function removeContainer(container: Docker.Container): Promise<boolean> {
  try {
    await container.remove({ force: true, v: true });
    return true;
  } catch (err) {
    const status = statusOf(err);
    if (status === 404) return false;
    if (status !== 409 || !/already in progress/i.test((err as Error).message)) throw err;
  }
  // The wait's answer is not trusted (it may carry an older error): whether it is gone is asked afterwards.
  await container.wait({ condition: "removed", abortSignal: AbortSignal.timeout(REMOVAL_WAIT_MS) }).catch(() => undefined);
  const gone = await container.inspect().then(
    () => false,
    (err: unknown) => {
      if (statusOf(err) === 404) return true;
      throw err;
    },
  );
  if (!gone) throw new BerthError("internal_error", `Container ${container.id} is still there after another removal of it ended.`);
  return false;
}

async function ignoreStatus(op: Promise<unknown>, ...statuses: number[]): Promise<void> {
  try {
    await op;
  } catch (err) {
    if (!statuses.includes(statusOf(err) ?? -1)) throw err;
  }
}
