// The workspace through the files API (shared/API.md §3 "GET /v1/tasks/:id/files"), on the real engine: live while a task
// runs, and a finished task's read out of its archive (in a local directory, and in an S3-compatible store).
import { createHash } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import type { TaskView } from "../../src/contract/types.js";
import { listWorkspace } from "../../src/workspace/safe-path.js";
import { httpRequest, startHarness, type Harness } from "../helpers/harness.js";
import { startS3, type S3Store } from "../helpers/s3.js";
import { rawGet } from "../helpers/sse.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME = { authorization: "Bearer acme-key-0001" };
const GLOBEX = { authorization: "Bearer globex-key-0002" };
const KEYS = { BERTH_API_KEYS: "acme:acme-key-0001,globex:globex-key-0002", BERTH_RATE_LIMIT_PER_MINUTE: "0" };
let h: Harness;
/** The same, with archives in an S3-compatible store (Ceph RGW, scripts/s3-rgw). */
let hs3: Harness;
let s3: S3Store;

beforeAll(async () => {
  s3 = await startS3();
  const b = await s3.bucket();
  [h, hs3] = await Promise.all([startHarness(KEYS), startHarness({ ...KEYS, ...b.env })]);
}, 300_000);

afterAll(async () => {
  const left = [...(h ? await h.leftoverContainers() : []), ...(hs3 ? await hs3.leftoverContainers() : [])];
  await h?.close();
  await hs3?.close();
  await s3?.stop();
  expect(left).toEqual([]);
});

interface Entry {
  path: string;
  type: "file" | "dir" | "symlink";
  size: number;
}

async function listing(id: string, headers: Record<string, string> = ACME, on: Harness = h): Promise<{ status: number; files: Entry[] }> {
  const res = await on.request("GET", `/v1/tasks/${id}/files`, undefined, headers);
  return { status: res.statusCode, files: res.statusCode === 200 ? (res.json().files as Entry[]) : [] };
}

async function getFile(id: string, rel: string, headers: Record<string, string> = ACME, on: Harness = h) {
  return on.request("GET", `/v1/tasks/${id}/files/${rel}`, undefined, headers);
}

const onDisk = (t: TaskView, rel: string) => readFile(path.join(h.deps.config.dirs.workspaces, t.workspace, rel));
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("a running task's workspace, then the finished one", () => {
  let t: TaskView;

  beforeAll(async () => {
    // Writes its files, links and a FIFO, then waits (running) until the test drops a `stop` file in.
    const script = [
      "mkdir -p d/e",
      "printf hello > a.txt",
      ": > empty.txt",
      "head -c 100000 /dev/urandom > d/e/r.bin",
      "ln -s /etc etc-link",
      "ln -s /etc/passwd passwd-link",
      "ln -s .. d/up",
      "mkfifo pipe",
      "touch ready",
      "while [ ! -e stop ]; do sleep 0.1; done",
      "rm stop",
      "echo after > late.txt",
    ].join("; ");
    t = await h.submit({ command: ["sh", "-c", script], timeoutSeconds: 300 }, ACME);
    await waitFor(
      "the task to write its files",
      () => listing(t.id),
      (l) => l.files.some((f) => f.path === "ready"),
      { timeoutMs: 60_000 },
    );
  }, 90_000);

  afterAll(async () => {
    // Lets the task finish if a test failed before doing so.
    if (!t) return;
    await writeFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "stop"), "").catch(() => undefined);
    await h.waitFinished(t.id, 60_000, ACME);
  }, 90_000);

  it("lists the workspace while the task runs: files, directories and links, without following or showing FIFOs", async () => {
    expect((await h.get(t.id, ACME)).status).toBe("running");
    const { status, files } = await listing(t.id);
    expect(status).toBe(200);
    expect(files).toEqual([
      { path: "a.txt", type: "file", size: 5 },
      { path: "d", type: "dir", size: 0 },
      { path: "d/e", type: "dir", size: 0 },
      { path: "d/e/r.bin", type: "file", size: 100_000 },
      { path: "d/up", type: "symlink", size: 2 },
      { path: "empty.txt", type: "file", size: 0 },
      { path: "etc-link", type: "symlink", size: 4 },
      { path: "passwd-link", type: "symlink", size: 11 },
      { path: "ready", type: "file", size: 0 },
    ]);
  });

  it("serves a file's bytes exactly while the task runs", async () => {
    const small = await getFile(t.id, "a.txt");
    expect(small.statusCode).toBe(200);
    expect(small.body).toBe("hello");
    expect(small.headers.get("content-type")).toBe("application/octet-stream");
    expect(small.headers.get("content-length")).toBe("5");
    const bin = await getFile(t.id, "d/e/r.bin");
    expect(bin.statusCode).toBe(200);
    expect(bin.raw.length).toBe(100_000);
    expect(sha(bin.raw)).toBe(sha(await onDisk(t, "d/e/r.bin")));
    const empty = await getFile(t.id, "empty.txt");
    expect(empty.statusCode).toBe(200);
    expect(empty.raw.length).toBe(0);
  });

  it("answers 404 for a symbolic link and for any path through one, whatever it points to", async () => {
    for (const rel of ["etc-link/passwd", "etc-link", "passwd-link", "d/up", "d/up/a.txt", "d/up/d/e/r.bin"]) {
      const res = await getFile(t.id, rel);
      expect([rel, res.statusCode]).toEqual([rel, 404]);
      expect(res.json().error.code).toBe("not_found");
      expect(res.body).not.toContain("root:");
    }
  });

  it("answers 404 for traversal attempts, however they are encoded", async () => {
    const prefix = `/v1/tasks/${t.id}/files/`;
    const attempts = [
      "../../../../etc/passwd",
      "..",
      "d/../a.txt",
      "d/e/../../a.txt",
      "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
      "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
      "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
      "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
      "d%2F..%2F..%2F..%2Fetc%2Fpasswd",
      "%252e%252e/%252e%252e/etc/passwd",
      "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
      "..%5c..%5cetc%5cpasswd",
      "/etc/passwd",
      "%2Fetc%2Fpasswd",
      ".%2e/.%2e/etc/passwd",
      "a.txt%00.png",
    ];
    for (const rel of attempts) {
      const res = await rawGet(h.url, prefix + rel, ACME);
      expect([rel, res.status]).toEqual([rel, 404]);
      expect(res.body.toString()).not.toContain("root:");
    }
  });

  it("refuses overlong UTF-8 dots (malformed escapes) before they reach the workspace", async () => {
    // Not valid percent-encoded UTF-8, so the router answers 400 before the files route sees the path.
    for (const rel of ["%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd", "%c0%af", "a%ff"]) {
      const res = await rawGet(h.url, `/v1/tasks/${t.id}/files/${rel}`, ACME);
      expect([rel, [400, 404].includes(res.status)]).toEqual([rel, true]);
      expect(res.body.toString()).not.toContain("root:");
    }
  });

  it("answers 404 for a FIFO, without blocking on it", async () => {
    // Opening the FIFO to read would wait for a writer that never comes: the request would hang until aborted.
    const res = await httpRequest(h.url, "GET", `/v1/tasks/${t.id}/files/pipe`, undefined, ACME, AbortSignal.timeout(30_000));
    expect(res.statusCode).toBe(404);
    // The server is not stuck either: the next request answers normally.
    expect((await getFile(t.id, "a.txt")).body).toBe("hello");
  });

  it("refuses a directory as a file, and hides the workspace from another tenant", async () => {
    const dir = await getFile(t.id, "d");
    expect(dir.statusCode).toBe(400);
    expect(dir.json().error.code).toBe("invalid_input");
    const theirs = await listing(t.id, GLOBEX);
    expect(theirs.status).toBe(404);
    for (const rel of ["a.txt", "d/e/r.bin", "nope.txt"]) {
      const res = await getFile(t.id, rel, GLOBEX);
      expect(res.statusCode).toBe(404);
      expect(res.json().error.code).toBe("not_found");
    }
    expect((await getFile(t.id, "nope.txt")).statusCode).toBe(404);
  });

  it("lists and serves the workspace after the task has finished", async () => {
    await writeFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "stop"), "");
    const done = await h.waitFinished(t.id, 60_000, ACME);
    expect(done.status).toBe("succeeded");
    const { files } = await listing(t.id);
    expect(files.map((f) => f.path)).toEqual([
      "a.txt",
      "d",
      "d/e",
      "d/e/r.bin",
      "d/up",
      "empty.txt",
      "etc-link",
      "late.txt",
      "passwd-link",
      "ready",
    ]);
    expect((await getFile(t.id, "late.txt")).body).toBe("after\n");
    const bin = await getFile(t.id, "d/e/r.bin");
    expect(sha(bin.raw)).toBe(sha(await onDisk(t, "d/e/r.bin")));
    expect((await getFile(t.id, "etc-link/passwd")).statusCode).toBe(404);
    expect((await getFile(t.id, "pipe")).statusCode).toBe(404);
  });
});

describe.each([
  { store: "the local directory", on: () => h },
  { store: "an S3-compatible store", on: () => hs3 },
])("a finished task's files, read out of its archive in $store", ({ on }) => {
  let t: TaskView;
  let live: Awaited<ReturnType<typeof listWorkspace>>;
  const list = (id: string, headers = ACME) => listing(id, headers, on());
  const get = (id: string, rel: string, headers = ACME) => getFile(id, rel, headers, on());

  beforeAll(async () => {
    const script = [
      "mkdir -p d/e empty 'sp ace'",
      "printf hello > a.txt",
      ": > zero.txt",
      "head -c 3000000 /dev/urandom > big.bin",
      "head -c 100000 /dev/urandom > d/e/r.bin",
      "printf accent > é.txt",
      "printf spaced > 'sp ace/f i.txt'",
      "ln a.txt d/hard",
      "ln -s /etc etc-link",
      "ln -s /etc/passwd passwd-link",
      "ln -s .. d/up",
      "mkfifo pipe",
    ].join(" && ");
    t = await on().waitFinished((await on().submit({ command: ["sh", "-c", script] }, ACME)).id, 60_000, ACME);
    expect(t.status).toBe("succeeded");
    // What the live files API answered for this workspace on disk, before it is removed.
    live = await listWorkspace(path.join(on().deps.config.dirs.workspaces, t.workspace));
    // Whatever is served from now on comes from the archive.
    await rm(path.join(on().deps.config.dirs.workspaces, t.workspace), { recursive: true });
  }, 90_000);

  it("lists the same entries as the live workspace did, without the FIFO the archive left out", async () => {
    const { status, files } = await list(t.id);
    expect(status).toBe(200);
    expect(files).toEqual(live.files);
    expect(files.map((f) => f.path)).toEqual([
      "a.txt",
      "big.bin",
      "d",
      "d/e",
      "d/e/r.bin",
      "d/hard",
      "d/up",
      "empty",
      "etc-link",
      "passwd-link",
      "sp ace",
      "sp ace/f i.txt",
      "zero.txt",
      "é.txt",
    ]);
    expect(files.find((f) => f.path === "d/hard")).toEqual({ path: "d/hard", type: "file", size: 5 });
    expect(files.find((f) => f.path === "etc-link")).toEqual({ path: "etc-link", type: "symlink", size: 4 });
  });

  it("serves each file's bytes exactly, a hardlink with its target's", async () => {
    const a = await get(t.id, "a.txt");
    expect([a.statusCode, a.body, a.headers.get("content-length"), a.headers.get("content-type")]).toEqual([
      200,
      "hello",
      "5",
      "application/octet-stream",
    ]);
    expect((await get(t.id, "d/hard")).body).toBe("hello");
    expect((await get(t.id, "zero.txt")).raw.length).toBe(0);
    expect((await get(t.id, encodeURIComponent("é.txt"))).body).toBe("accent");
    expect((await get(t.id, "sp%20ace/f%20i.txt")).body).toBe("spaced");
    // Compared with the archive's own bytes, as GNU tar extracts them.
    const archive = await on().request("GET", `/v1/tasks/${t.id}/archive`, undefined, ACME);
    const file = path.join(on().root, `${t.id}.tar.gz`);
    await writeFile(file, archive.raw);
    for (const rel of ["big.bin", "d/e/r.bin"]) {
      const fromTar = (await execa("tar", ["-xzOf", file, rel], { encoding: "buffer" })).stdout as unknown as Buffer;
      const served = await get(t.id, rel);
      expect([rel, served.statusCode, served.raw.length, sha(served.raw)]).toEqual([rel, 200, fromTar.length, sha(fromTar)]);
    }
  });

  it("lists an empty workspace's archive as empty", async () => {
    const empty = await on().waitFinished((await on().submit({ command: ["true"] }, ACME)).id, 60_000, ACME);
    const res = await on().request("GET", `/v1/tasks/${empty.id}/files`, undefined, ACME);
    expect([res.statusCode, res.json()]).toEqual([200, { files: [], truncated: false }]);
    expect((await get(empty.id, "a.txt")).statusCode).toBe(404);
  });

  it("refuses links, paths through them, the FIFO, directories and missing files, as the live API does", async () => {
    for (const rel of ["etc-link/passwd", "etc-link", "passwd-link", "d/up", "d/up/a.txt", "pipe", "nope.txt", "d/nope"]) {
      const res = await get(t.id, rel);
      expect([rel, res.statusCode, res.json().error.code]).toEqual([rel, 404, "not_found"]);
      expect(res.body).not.toContain("root:");
    }
    const dir = await get(t.id, "d");
    expect([dir.statusCode, dir.json().error.code]).toEqual([400, "invalid_input"]);
    expect((await list(t.id, GLOBEX)).status).toBe(404);
    expect((await get(t.id, "a.txt", GLOBEX)).statusCode).toBe(404);
  });
});

describe("a file that changes while it is read", () => {
  it("never leaves the client waiting for bytes the Content-Length promised", async () => {
    // Rewrites f.bin (truncate, then 4 MB) in a loop, so many reads see it shrink under them.
    const t = await h.submit(
      {
        command: ["sh", "-c", "touch ready; while [ ! -e stop ]; do head -c 4000000 /dev/zero > f.bin; : > f.bin; done; rm stop"],
        timeoutSeconds: 300,
      },
      ACME,
    );
    try {
      await waitFor(
        "the writer loop",
        () => listing(t.id),
        (l) => l.files.some((f) => f.path === "ready"),
        { timeoutMs: 60_000 },
      );
      const outcomes: string[] = [];
      for (let i = 0; i < 30; i++) {
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(), 30_000); // a deadline for "never a hang", not a measure of speed
        try {
          const res = await fetch(`${h.url}/v1/tasks/${t.id}/files/f.bin`, { headers: ACME, signal: ac.signal });
          const body = Buffer.from(await res.arrayBuffer());
          if (res.status === 200) {
            expect(body.length).toBe(Number(res.headers.get("content-length")));
            expect(body.every((b) => b === 0)).toBe(true);
            outcomes.push("whole");
          } else {
            expect(res.status).toBe(409); // it shrank before anything was sent
            expect(JSON.parse(body.toString()).error.code).toBe("wrong_state");
            outcomes.push("409");
          }
        } catch (err) {
          // Cut off after the headers: a visible failure, never a hang (the abort above would say "aborted").
          expect(ac.signal.aborted).toBe(false);
          expect(String((err as Error).message)).toMatch(/terminated/);
          outcomes.push("cut");
        } finally {
          clearTimeout(timer);
        }
      }
      expect(outcomes).toHaveLength(30);
    } finally {
      await writeFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "stop"), "").catch(() => undefined);
      expect((await h.waitFinished(t.id, 60_000, ACME)).status).toBe("succeeded");
    }
  }, 120_000);
});

describe("a task that has not started", () => {
  it("has an empty listing and no files", async () => {
    // Queued behind a stopped worker? There is none in this harness: make one without a worker.
    const idle = await startHarness({ BERTH_RATE_LIMIT_PER_MINUTE: "0" }, { worker: false });
    try {
      const q = await idle.submit({ command: ["true"] });
      const list = await idle.request("GET", `/v1/tasks/${q.id}/files`);
      expect(list.statusCode).toBe(200);
      expect(list.json().files).toEqual([]);
      expect((await idle.request("GET", `/v1/tasks/${q.id}/files/a.txt`)).statusCode).toBe(404);
    } finally {
      await idle.close();
    }
  });
});
