// Steering tasks through the HTTP API (shared/API.md §3): cancel, delete, fromTask, idempotency and the tenant quota.
import { jest } from "@jest/globals";
import { createHash } from "node:crypto";
import { access, lstat, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import type { TaskView } from "../../src/contract/types.js";
import { createDockerClient } from "../../src/runner/docker-runtime.js";
import { containerName } from "../../src/runner/labels.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { collectSse, endEvents } from "../helpers/sse.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME = { authorization: "Bearer acme-key-0001" };
const GLOBEX = { authorization: "Bearer globex-key-0002" };
const KEYS = "acme:acme-key-0001,globex:globex-key-0002";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ BERTH_API_KEYS: KEYS, BERTH_RATE_LIMIT_PER_MINUTE: "0" });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const workspaceDir = (hh: Harness, t: TaskView) => path.join(hh.deps.config.dirs.workspaces, t.workspace);
const archiveFile = (hh: Harness, t: TaskView) => path.join(hh.deps.config.dirs.archives, `${t.workspace}.tar.gz`);

async function plainLogs(hh: Harness, id: string, headers: Record<string, string> = ACME): Promise<string> {
  const res = await hh.request("GET", `/v1/tasks/${id}/logs`, undefined, headers);
  expect(res.statusCode).toBe(200);
  return res.body;
}

/** Containers of one task still on the engine. */
const taskContainers = (hh: Harness, id: string) => hh.taskContainers(id);

/**
 * Every container event the engine recorded for one task's container since `sinceMs` (create, start, die...; a warm
 * container's from its claim, when it was given the task's name: rename, kill, die...); a kill names its signal
 * ("kill 15").
 */
async function containerEvents(hh: Harness, id: string, sinceMs: number): Promise<string[]> {
  const docker = await createDockerClient();
  const stream = (await docker.getEvents({
    since: Math.floor(sinceMs / 1000) - 1,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { type: ["container"], container: [containerName(hh.namespace, id)] },
  })) as NodeJS.ReadableStream;
  let text = "";
  for await (const chunk of stream) text += chunk.toString();
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { Action: string; Actor?: { Attributes?: Record<string, string> } })
    .map((e) => (e.Action === "kill" ? `kill ${e.Actor?.Attributes?.signal}` : e.Action));
}

/** The signals the engine sent one task's containers since `sinceMs`, in order. */
const signalsSent = async (hh: Harness, id: string, sinceMs: number) =>
  (await containerEvents(hh, id, sinceMs)).filter((a) => a.startsWith("kill "));

describe("cancel", () => {
  it("a queued task never starts: canceled, no startedAt, no container ever created", async () => {
    const single = await startHarness({ BERTH_API_KEYS: KEYS, BERTH_RATE_LIMIT_PER_MINUTE: "0", BERTH_CONCURRENCY: "1" });
    try {
      const since = Date.now();
      const blocker = await single.submit({ command: ["sleep", "600"] }, ACME);
      await waitFor(
        "the first task to run",
        () => single.get(blocker.id, ACME),
        (t) => t.status === "running",
      );
      const queued = await single.submit({ command: ["sh", "-c", "echo should-not-run > ran.txt"] }, ACME);
      expect((await single.get(queued.id, ACME)).status).toBe("queued");

      const res = await single.request("POST", `/v1/tasks/${queued.id}/cancel`, undefined, ACME);
      expect(res.statusCode).toBe(202);
      expect(res.json()).toMatchObject({ id: queued.id, status: "canceled", startedAt: null });

      // Free the worker: had the canceled job stayed in the queue, it would be taken now.
      expect((await single.request("POST", `/v1/tasks/${blocker.id}/cancel`, undefined, ACME)).statusCode).toBe(202);
      expect((await single.waitFinished(blocker.id, 60_000, ACME)).status).toBe("canceled");
      const after = await single.waitFinished((await single.submit({ command: ["echo", "next"] }, ACME)).id, 60_000, ACME);
      expect(after.status).toBe("succeeded"); // the worker took the next job, not the canceled one

      const view = await single.get(queued.id, ACME);
      expect(view).toMatchObject({ status: "canceled", reason: "canceled", startedAt: null, exitCode: null });
      expect(view.finishedAt).not.toBeNull();
      expect(await exists(path.join(workspaceDir(single, view), "ran.txt"))).toBe(false);
      expect(await containerEvents(single, queued.id, since)).toEqual([]);
      // The probe does see containers: the blocker's was created (cold) or claimed (warm: renamed).
      expect(await containerEvents(single, blocker.id, since)).toContain(single.warm ? "rename" : "create");
      const sse = await collectSse(`${single.url}/v1/tasks/${queued.id}/logs`, ACME);
      expect(endEvents(sse.events).map((e) => JSON.parse(e.data))).toEqual([{ status: "canceled", exitCode: null }]);
      expect(await single.leftoverContainers()).toEqual([]);
    } finally {
      await single.close();
    }
  }, 120_000);

  it("a running task gets SIGTERM, ends canceled within the grace period, its container removed and its archive made", async () => {
    const t = await h.submit(
      { command: ["sh", "-c", "trap 'echo got SIGTERM; echo bye > bye.txt; exit 143' TERM; echo started; sleep 600 & wait"] },
      ACME,
    );
    await waitFor(
      "the task to start",
      () => plainLogs(h, t.id),
      (s) => s === "started\n",
    );
    const since = Date.now();
    const res = await h.request("POST", `/v1/tasks/${t.id}/cancel`, undefined, ACME);
    expect(res.statusCode).toBe(202);
    const done = await h.waitFinished(t.id, 60_000, ACME);
    expect(done).toMatchObject({ status: "canceled", reason: "canceled" });
    // SIGTERM, and no SIGKILL: it ended within its grace period.
    expect(await signalsSent(h, t.id, since)).toEqual(["kill 15"]);
    expect(await plainLogs(h, t.id)).toBe("started\ngot SIGTERM\n");
    expect(await taskContainers(h, t.id)).toEqual([]);
    expect(done.archive).not.toBeNull();
    expect(sha(await readFile(archiveFile(h, done)))).toBe(done.archive?.sha256);
    expect(await readFile(path.join(workspaceDir(h, done), "bye.txt"), "utf8")).toBe("bye\n");
  }, 90_000);

  it("a running task that ignores SIGTERM is killed after the grace period and ends canceled", async () => {
    const t = await h.submit({ command: ["sh", "-c", "trap '' TERM; echo started; while :; do sleep 1; done"] }, ACME);
    await waitFor(
      "the task to start",
      () => plainLogs(h, t.id),
      (s) => s === "started\n",
    );
    const since = Date.now();
    expect((await h.request("POST", `/v1/tasks/${t.id}/cancel`, undefined, ACME)).statusCode).toBe(202);
    const done = await h.waitFinished(t.id, 60_000, ACME);
    expect(done).toMatchObject({ status: "canceled", reason: "canceled" });
    // It got SIGTERM first; SIGKILL only followed once the grace period (BERTH_STOP_GRACE_SECONDS) had passed.
    expect(await signalsSent(h, t.id, since)).toEqual(["kill 15", "kill 9"]);
    expect(done.archive).not.toBeNull();
    expect(await taskContainers(h, t.id)).toEqual([]);
  }, 90_000);

  it("a finished task answers 409 wrong_state and stays as it was; another tenant's task 404", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["true"] }, ACME)).id, 60_000, ACME);
    const res = await h.request("POST", `/v1/tasks/${t.id}/cancel`, undefined, ACME);
    expect(res.statusCode).toBe(409);
    expect(res.json().error.code).toBe("wrong_state");
    expect(res.json().error.message).toMatch(/succeeded/);
    expect((await h.get(t.id, ACME)).status).toBe("succeeded");
    const theirs = await h.request("POST", `/v1/tasks/${t.id}/cancel`, undefined, GLOBEX);
    expect(theirs.statusCode).toBe(404);
    expect(theirs.json().error.code).toBe("not_found");
  });
});

describe("delete", () => {
  /** Nothing of the task is left: record, workspace, archive, log stream, and no key that comes back later. */
  async function expectGone(t: TaskView): Promise<void> {
    expect((await h.request("GET", `/v1/tasks/${t.id}`, undefined, ACME)).statusCode).toBe(404);
    expect((await h.request("GET", `/v1/tasks/${t.id}/logs`, undefined, ACME)).statusCode).toBe(404);
    expect(await exists(workspaceDir(h, t))).toBe(false);
    expect(await exists(archiveFile(h, t))).toBe(false);
    const keys = [h.services.keys.logs(t.id), h.services.keys.task(t.id), h.services.keys.spec(t.id)];
    expect(await h.deps.redis.exists(...keys)).toBe(0);
    const list = await h.request("GET", "/v1/tasks?limit=500", undefined, ACME);
    expect(list.json().tasks.map((x: TaskView) => x.id)).not.toContain(t.id);
    // A late writer (the worker ending the log stream) must not bring a key back: once the worker is done with
    // every job, nothing more will write for this task.
    await waitFor(
      "the worker to finish its jobs",
      () => h.services.queue.counts(),
      (c) => (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0,
    );
    expect(await h.deps.redis.exists(...keys)).toBe(0);
  }

  it("of a finished task: 204, then 404, and its workspace, archive and logs are gone", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "echo data > out.txt; echo logged"] }, ACME)).id, 60_000, ACME);
    expect(t.status).toBe("succeeded");
    expect(await exists(workspaceDir(h, t))).toBe(true);
    expect(await exists(archiveFile(h, t))).toBe(true);
    expect(await h.deps.redis.exists(h.services.keys.logs(t.id))).toBe(1);
    expect((await h.request("DELETE", `/v1/tasks/${t.id}`, undefined, GLOBEX)).statusCode).toBe(404); // not theirs
    expect(await exists(workspaceDir(h, t))).toBe(true);

    const res = await h.request("DELETE", `/v1/tasks/${t.id}`, undefined, ACME);
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe("");
    await expectGone(t);
    expect((await h.request("DELETE", `/v1/tasks/${t.id}`, undefined, ACME)).statusCode).toBe(404);
  });

  it("of a running task: cancels it, waits for it to stop, then removes everything", async () => {
    const t = await h.submit({ command: ["sh", "-c", "echo started; echo x > x.txt; sleep 600"] }, ACME);
    await waitFor(
      "the task to start",
      () => plainLogs(h, t.id),
      (s) => s === "started\n",
    );
    const res = await h.request("DELETE", `/v1/tasks/${t.id}`, undefined, ACME);
    expect(res.statusCode).toBe(204);
    expect(await taskContainers(h, t.id)).toEqual([]);
    await expectGone(t);
  }, 90_000);

  it("of a task that finished a moment ago, many times over, leaves no log stream behind", async () => {
    // Deletes right as the worker records the end, where the end-of-log marker races the removal.
    for (let i = 0; i < 5; i++) {
      const t = await h.submit({ command: ["sh", "-c", "echo hi"] }, ACME);
      await waitFor(
        "the task to finish",
        () => h.services.store.get(t.id),
        (r) => !!r && !["queued", "running"].includes(r.status),
        { intervalMs: 5 },
      );
      expect((await h.request("DELETE", `/v1/tasks/${t.id}`, undefined, ACME)).statusCode).toBe(204);
      await expectGone(t);
    }
  }, 120_000);
});

describe("delete racing the end of a task", () => {
  it("does not leave a log stream behind when the end-of-log marker lands just after the final status", async () => {
    // No worker: this test plays the worker's last two steps itself, with the delay a Redis retry would add.
    const idle = await startHarness({ BERTH_API_KEYS: KEYS, BERTH_RATE_LIMIT_PER_MINUTE: "0" }, { worker: false });
    try {
      const t = await idle.submit({ command: ["echo", "hi"] }, ACME);
      await idle.services.logs.append(t.id, [{ stream: "stdout", data: "hi\n" }]);
      const now = Date.now();
      expect(
        await idle.services.store.transition(
          t.id,
          "acme",
          ["queued"],
          {
            status: "succeeded",
            exitCode: 0,
            startedAtMs: now - 100,
            finishedAtMs: now,
            expiresAtMs: now + 60_000,
          },
          true,
        ),
      ).toBe(true);
      // The end-of-log marker lands only once the delete has looked for it and not found it.
      const looked = jest.spyOn(idle.deps.redis, "xrevrange");
      const deleting = idle.request("DELETE", `/v1/tasks/${t.id}`, undefined, ACME);
      await waitFor(
        "the delete to look for the end-of-log marker",
        async () => looked.mock.results.length,
        (n) => n >= 1,
      );
      const [last] = (await looked.mock.results[0]!.value) as [string, string[]][];
      expect(last?.[1]).toEqual(["s", "stdout", "t", "hi\n"]); // the last entry it saw was output, not the end
      looked.mockRestore();
      await idle.services.logs.appendEnd(t.id, { status: "succeeded", exitCode: 0 });
      expect((await deleting).statusCode).toBe(204);
      expect((await idle.request("GET", `/v1/tasks/${t.id}`, undefined, ACME)).statusCode).toBe(404);
      expect(await idle.deps.redis.exists(idle.services.keys.logs(t.id), idle.services.keys.task(t.id))).toBe(0);
    } finally {
      await idle.close();
    }
  });
});

describe("fromTask", () => {
  it("starts B from A's final workspace and leaves A's workspace and archive as they were", async () => {
    const a = await h.waitFinished(
      (
        await h.submit(
          {
            command: [
              "sh",
              "-c",
              "mkdir -p data/sub; echo from-A > data/a.txt; head -c 5000 /dev/urandom > data/r.bin; ln -s a.txt data/link; echo deep > data/sub/d.txt",
            ],
          },
          ACME,
        )
      ).id,
      60_000,
      ACME,
    );
    expect(a.status).toBe("succeeded");
    const archiveBefore = await readFile(archiveFile(h, a));
    const rShaA = sha(await readFile(path.join(workspaceDir(h, a), "data/r.bin")));

    const b = await h.waitFinished(
      (
        await h.submit(
          {
            command: [
              "sh",
              "-c",
              "cat data/a.txt; sha256sum data/r.bin | cut -c1-64; readlink data/link; cat data/sub/d.txt; echo more >> data/a.txt; echo B > b.txt",
            ],
            fromTask: a.id,
          },
          ACME,
        )
      ).id,
      60_000,
      ACME,
    );
    expect(b).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect(await plainLogs(h, b.id)).toBe(`from-A\n${rShaA}\na.txt\ndeep\n`);
    // B could write the restored files (they are the runner's), in its own workspace only.
    expect((await h.request("GET", `/v1/tasks/${b.id}/files/data/a.txt`, undefined, ACME)).body).toBe("from-A\nmore\n");
    expect(await readFile(path.join(workspaceDir(h, a), "data/a.txt"), "utf8")).toBe("from-A\n");
    expect(await exists(path.join(workspaceDir(h, a), "b.txt"))).toBe(false);
    const aAfter = await h.get(a.id, ACME);
    expect(aAfter.archive).toEqual(a.archive);
    const archiveAfter = await readFile(archiveFile(h, a));
    expect(archiveAfter.equals(archiveBefore)).toBe(true);
    expect(sha(archiveAfter)).toBe(a.archive?.sha256);
  }, 120_000);

  it("refuses another tenant's task, an unknown task and an unfinished one with 400, queueing nothing", async () => {
    const theirs = await h.waitFinished((await h.submit({ command: ["sh", "-c", "echo secret > s.txt"] }, GLOBEX)).id, 60_000, GLOBEX);
    const running = await h.submit({ command: ["sleep", "600"] }, ACME);
    try {
      const before = (await h.request("GET", "/v1/tasks?limit=500", undefined, ACME)).json().tasks.length;
      for (const fromTask of [theirs.id, "doesnotexist123", running.id]) {
        const res = await h.request("POST", "/v1/tasks", { command: ["cat", "s.txt"], fromTask }, ACME);
        expect([fromTask, res.statusCode]).toEqual([fromTask, 400]);
        expect(res.json().error.code).toBe("invalid_input");
        expect(res.json().error.message).toMatch(/fromTask/);
      }
      // Another tenant's task reads exactly like a missing one.
      const msg = async (id: string) =>
        (await h.request("POST", "/v1/tasks", { command: ["true"], fromTask: id }, ACME)).json().error.message.replace(id, "ID");
      expect(await msg(theirs.id)).toBe(await msg("doesnotexist123"));
      expect((await h.request("GET", "/v1/tasks?limit=500", undefined, ACME)).json().tasks.length).toBe(before);
    } finally {
      await h.request("POST", `/v1/tasks/${running.id}/cancel`, undefined, ACME);
      await h.waitFinished(running.id, 60_000, ACME);
    }
  }, 90_000);

  it("refuses to restore an archive that changed on disk since it was recorded", async () => {
    const a = await h.waitFinished((await h.submit({ command: ["sh", "-c", "echo original > data.txt"] }, ACME)).id, 60_000, ACME);
    await writeFile(archiveFile(h, a), gzipSync(tar([{ name: "data.txt", data: "tampered\n" }])));
    const b = await h.waitFinished((await h.submit({ command: ["cat", "data.txt"], fromTask: a.id }, ACME)).id, 60_000, ACME);
    expect(b).toMatchObject({ status: "failed", reason: "workspace_failed" });
    expect(b.message).toContain("does not match its recorded sha256");
  }, 90_000);

  it("restoring a hostile archive writes nothing outside B's workspace", async () => {
    const canary = path.join(h.root, "canary");
    await mkdir(canary, { recursive: true });
    await writeFile(path.join(canary, "keep.txt"), "original\n");
    const passwdBefore = { sha: sha(await readFile("/etc/passwd")), nlink: (await stat("/etc/passwd")).nlink };

    const a = await h.waitFinished((await h.submit({ command: ["sh", "-c", "echo benign > ok.txt"] }, ACME)).id, 60_000, ACME);
    expect(a.archive).not.toBeNull();
    // Swap A's archive for a hostile one and record it as A's (as if A's own task had produced it), so B
    // really restores it; a swap berth did not record is refused outright (next test).
    const up = "../".repeat(12);
    await writeFile(
      archiveFile(h, a),
      gzipSync(
        tar([
          { name: "ok.txt", data: "benign\n" },
          { name: "ok-link", type: "symlink", linkname: "ok.txt" },
          { name: "../escape.txt", data: "escaped\n" },
          { name: `${up}${canary.slice(1)}/dotdot.txt`, data: "escaped\n" },
          { name: `${canary}/abs.txt`, data: "escaped\n" },
          { name: "link", type: "symlink", linkname: canary },
          { name: "link/through.txt", data: "escaped\n" },
          { name: "rel", type: "symlink", linkname: `${up}${canary.slice(1)}` },
          { name: "rel/through.txt", data: "escaped\n" },
          { name: "d", type: "dir" },
          { name: "d", type: "symlink", linkname: canary },
          { name: "d/replaced.txt", data: "escaped\n" },
          { name: "hl", type: "hardlink", linkname: "/etc/passwd" },
          { name: "hl2", type: "hardlink", linkname: `${up}etc/passwd` },
          { name: "hl3", type: "hardlink", linkname: "link/keep.txt" },
          { name: "hl3", data: "overwrite through a hard link\n" },
        ]),
      ),
    );
    const hostile = await readFile(archiveFile(h, a));
    await h.services.store.patch(a.id, { archive: { bytes: hostile.length, sha256: sha(hostile) } });

    const b = await h.waitFinished(
      (await h.submit({ command: ["sh", "-c", "ls -A | sort; cat ok.txt"], fromTask: a.id }, ACME)).id,
      60_000,
      ACME,
    );
    // The safe outcomes: B failed with a clear reason, or B ran with only the harmless entries restored.
    if (b.status === "failed") {
      expect(b.reason).toBe("workspace_failed");
      expect(b.message ?? "").toMatch(/archive|restore|earlier task|fromTask/i);
    } else {
      expect(b.status).toBe("succeeded");
      const ws = workspaceDir(h, b);
      expect(await readFile(path.join(ws, "ok.txt"), "utf8")).toBe("benign\n");
      const names = (await readdir(ws)).sort();
      for (const name of names) expect(["d", "hl3", "ok-link", "ok.txt"]).toContain(name); // the harmless entries only
      for (const name of names) {
        const st = await lstat(path.join(ws, name));
        if (st.isFile()) expect(st.nlink).toBe(1); // no hard link to anything, inside or outside
        if (st.isSymbolicLink()) expect(name).toBe("ok-link");
        if (name === "d") expect(st.isDirectory() && (await readdir(path.join(ws, "d"))).length === 0).toBe(true);
      }
      if (names.includes("hl3")) expect(await readFile(path.join(ws, "hl3"), "utf8")).toBe("overwrite through a hard link\n");
    }
    expect(await readdir(canary)).toEqual(["keep.txt"]);
    expect(await readFile(path.join(canary, "keep.txt"), "utf8")).toBe("original\n");
    expect(await exists(path.join(h.deps.config.dirs.workspaces, "escape.txt"))).toBe(false);
    expect(await exists(path.join(h.root, "escape.txt"))).toBe(false);
    expect({ sha: sha(await readFile("/etc/passwd")), nlink: (await stat("/etc/passwd")).nlink }).toEqual(passwdBefore);
    expect((await h.get(a.id, ACME)).archive).toEqual({ bytes: hostile.length, sha256: sha(hostile) }); // A is left as recorded
  }, 120_000);
});

describe("idempotency", () => {
  it("answers the same task with 200 for the same key, from the body or the header; other keys and tenants get their own", async () => {
    const body = { command: ["echo", "once"], idempotencyKey: "order-42" };
    const first = await h.request("POST", "/v1/tasks", body, ACME);
    expect(first.statusCode).toBe(202);
    const id = first.json().id as string;
    const again = await h.request("POST", "/v1/tasks", body, ACME);
    expect(again.statusCode).toBe(200);
    expect(again.json().id).toBe(id);
    const viaHeader = await h.request("POST", "/v1/tasks", { command: ["echo", "once"] }, { ...ACME, "idempotency-key": "order-42" });
    expect(viaHeader.statusCode).toBe(200);
    expect(viaHeader.json().id).toBe(id);
    await h.waitFinished(id, 60_000, ACME);
    const afterFinish = await h.request("POST", "/v1/tasks", body, ACME);
    expect(afterFinish.statusCode).toBe(200);
    expect(afterFinish.json()).toMatchObject({ id, status: "succeeded" });

    const other = await h.request("POST", "/v1/tasks", { ...body, idempotencyKey: "order-43" }, ACME);
    expect(other.statusCode).toBe(202);
    expect(other.json().id).not.toBe(id);
    const otherTenant = await h.request("POST", "/v1/tasks", body, GLOBEX);
    expect(otherTenant.statusCode).toBe(202);
    expect(otherTenant.json().id).not.toBe(id);
    await h.waitFinished(other.json().id, 60_000, ACME);
    await h.waitFinished(otherTenant.json().id, 60_000, GLOBEX);
    expect(await plainLogs(h, id)).toBe("once\n"); // it ran once
  }, 90_000);

  it("creates exactly one task for five concurrent submits with one key", async () => {
    const key = `concurrent-${Date.now()}`;
    const label = { batch: key };
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        h.request("POST", "/v1/tasks", { command: ["echo", "one"], labels: label, idempotencyKey: key }, ACME),
      ),
    );
    const codes = results.map((r) => r.statusCode).sort();
    expect(codes).toEqual([200, 200, 200, 200, 202]);
    const ids = new Set(results.map((r) => r.json().id as string));
    expect(ids.size).toBe(1);
    const listed = await h.request("GET", `/v1/tasks?label=batch:${key}`, undefined, ACME);
    expect(listed.json().tasks).toHaveLength(1);
    const [id] = [...ids] as [string];
    await h.waitFinished(id, 60_000, ACME);
    expect(await plainLogs(h, id)).toBe("one\n");
  }, 90_000);
});

describe("tenant quota", () => {
  it("answers a tenant's third active task with 429 and Retry-After, while another tenant still submits", async () => {
    const quota = await startHarness({ BERTH_API_KEYS: KEYS, BERTH_RATE_LIMIT_PER_MINUTE: "0", BERTH_TENANT_MAX_ACTIVE: "2" });
    const ids: [string, Record<string, string>][] = [];
    const submit = async (headers: Record<string, string>) => {
      const res = await quota.request("POST", "/v1/tasks", { command: ["sleep", "600"] }, headers);
      if (res.statusCode === 202) ids.push([res.json().id, headers]);
      return res;
    };
    try {
      expect((await submit(ACME)).statusCode).toBe(202);
      expect((await submit(ACME)).statusCode).toBe(202);
      const over = await submit(ACME);
      expect(over.statusCode).toBe(429);
      expect(over.json().error.code).toBe("tenant_over_limit");
      expect(over.json().error.message).toMatch(/BERTH_TENANT_MAX_ACTIVE/);
      expect(Number(over.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      expect((await quota.request("GET", "/v1/tasks", undefined, ACME)).json().tasks).toHaveLength(2); // nothing queued

      expect((await submit(GLOBEX)).statusCode).toBe(202);

      // A finished task frees its slot.
      const [firstId] = ids[0] as [string, Record<string, string>];
      expect((await quota.request("POST", `/v1/tasks/${firstId}/cancel`, undefined, ACME)).statusCode).toBe(202);
      await quota.waitFinished(firstId, 60_000, ACME);
      expect((await submit(ACME)).statusCode).toBe(202);
    } finally {
      for (const [id, headers] of ids) await quota.request("POST", `/v1/tasks/${id}/cancel`, undefined, headers);
      for (const [id, headers] of ids) await quota.waitFinished(id, 60_000, headers);
      const left = await quota.leftoverContainers();
      await quota.close();
      expect(left).toEqual([]);
    }
  }, 120_000);
});

// --- a minimal tar writer, so the hostile archive holds exactly the entries we want (node-tar would sanitise them) ---

interface TarEntry {
  name: string;
  type?: "file" | "dir" | "symlink" | "hardlink";
  data?: string;
  linkname?: string;
}

function tar(entries: readonly TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = Buffer.from(e.type === undefined || e.type === "file" ? (e.data ?? "") : "");
    const header = Buffer.alloc(512);
    const put = (text: string, offset: number, length: number) => {
      const b = Buffer.from(text);
      if (b.length > length) throw new Error(`tar field too long: ${text}`);
      b.copy(header, offset);
    };
    const field = (n: number, length: number) => `${n.toString(8).padStart(length - 1, "0")}\0`;
    put(e.name, 0, 100);
    put(field(e.type === "dir" ? 0o755 : 0o644, 8), 100, 8);
    put(field(1000, 8), 108, 8);
    put(field(1000, 8), 116, 8);
    put(field(data.length, 12), 124, 12);
    put(field(Math.floor(Date.now() / 1000), 12), 136, 12);
    put("        ", 148, 8);
    put({ file: "0", hardlink: "1", symlink: "2", dir: "5" }[e.type ?? "file"], 156, 1);
    put(e.linkname ?? "", 157, 100);
    put("ustar\0", 257, 6);
    put("00", 263, 2);
    let sum = 0;
    for (const byte of header) sum += byte;
    put(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8);
    blocks.push(header, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}
