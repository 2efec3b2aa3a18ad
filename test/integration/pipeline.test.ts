// The core pipeline through the HTTP API, on the real Docker engine and Redis.
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { list } from "tar";
import { startHarness, type Harness } from "../helpers/harness.js";
import { startS3, type S3Store } from "../helpers/s3.js";

let h: Harness;
/** The same berth with its archives in an S3-compatible store (Ceph RGW, scripts/s3-rgw). */
let hs3: Harness;
let s3: S3Store;
let bucket: string;

beforeAll(async () => {
  s3 = await startS3();
  const b = await s3.bucket("archives");
  bucket = b.bucket;
  [h, hs3] = await Promise.all([
    startHarness({ BERTH_MAX_OUTPUT_BYTES: "100000" }),
    startHarness({ BERTH_MAX_OUTPUT_BYTES: "100000", ...b.env }),
  ]);
}, 300_000);

afterAll(async () => {
  const left = [...(h ? await h.leftoverContainers() : []), ...(hs3 ? await hs3.leftoverContainers() : [])];
  await h?.close();
  await hs3?.close();
  await s3?.stop();
  expect(left).toEqual([]); // no container outlives its task
});

async function fetchFrom(on: Harness, urlPath: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${on.url}${urlPath}`, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}
const fetchText = (urlPath: string, headers: Record<string, string> = {}) => fetchFrom(h, urlPath, headers);

const BACKENDS = [
  { store: "the local directory", on: () => h },
  { store: "an S3-compatible store", on: () => hs3 },
];

describe.each(BACKENDS)("a task from submit to archive, archives in $store", ({ on }) => {
  const fetchText = (urlPath: string, headers: Record<string, string> = {}) => fetchFrom(on(), urlPath, headers);

  it("runs the command in /workspace, records exit 0, keeps its output and archives what it wrote", async () => {
    const h = on();
    const submitted = await h.submit({
      command: ["sh", "-c", "echo hi > out.txt; mkdir -p src; printf 'print(1)\\n' > src/a.py; echo done"],
    });
    expect(submitted.status).toBe("queued");
    expect(submitted.workspace).toMatch(new RegExp(`^task-\\d{13}-${submitted.id}$`));

    const done = await h.waitFinished(submitted.id);
    expect(done).toMatchObject({ status: "succeeded", exitCode: 0, reason: null });
    expect(done.startedAt).not.toBeNull();
    expect(done.finishedAt).not.toBeNull();
    expect(done.expiresAt).not.toBeNull();

    const logs = await fetchText(`/v1/tasks/${done.id}/logs`);
    expect(logs.status).toBe(200);
    expect(logs.headers.get("content-type")).toContain("text/plain");
    expect(logs.body.toString()).toBe("done\n");

    const archive = await fetchText(`/v1/tasks/${done.id}/archive`);
    expect(archive.status).toBe(200);
    expect(archive.headers.get("content-type")).toBe("application/gzip");
    expect(archive.headers.get("content-disposition")).toBe(`attachment; filename="${done.workspace}.tar.gz"`);
    const sha = createHash("sha256").update(archive.body).digest("hex");
    expect(done.archive).toEqual({ bytes: archive.body.length, sha256: sha });
    expect(archive.headers.get("etag")).toBe(`"${sha}"`);
    expect(Number(archive.headers.get("content-length"))).toBe(archive.body.length);

    const file = path.join(h.root, "entries.tgz");
    await import("node:fs/promises").then((fs) => fs.writeFile(file, archive.body));
    const names: string[] = [];
    await list({ file, onReadEntry: (e) => void names.push(e.path) });
    expect(names.sort()).toEqual(["out.txt", "src/", "src/a.py"]);

    const written = await readFile(path.join(h.deps.config.dirs.workspaces, done.workspace, "out.txt"), "utf8");
    expect(written).toBe("hi\n");
  });

  it("serves byte ranges of the archive with 206, and 416 past the end; If-Range with another ETag gets it all", async () => {
    const h = on();
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "head -c 5000 /dev/urandom > r.bin"] })).id);
    const full = await fetchText(`/v1/tasks/${t.id}/archive`);
    const size = full.body.length;
    expect(full.headers.get("accept-ranges")).toBe("bytes");
    const part = await fetchText(`/v1/tasks/${t.id}/archive`, { range: "bytes=10-99" });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 10-99/${size}`);
    expect(part.headers.get("content-length")).toBe("90");
    expect(part.headers.get("etag")).toBe(`"${t.archive?.sha256}"`);
    expect(part.body.equals(full.body.subarray(10, 100))).toBe(true);
    const tail = await fetchText(`/v1/tasks/${t.id}/archive`, { range: "bytes=-100" });
    expect([tail.status, tail.headers.get("content-range")]).toEqual([206, `bytes ${size - 100}-${size - 1}/${size}`]);
    expect(tail.body.equals(full.body.subarray(size - 100))).toBe(true);
    const open = await fetchText(`/v1/tasks/${t.id}/archive`, { range: `bytes=${size - 1}-` });
    expect([open.status, open.body.length]).toEqual([206, 1]);
    const past = await fetchText(`/v1/tasks/${t.id}/archive`, { range: `bytes=${size + 10}-` });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe(`bytes */${size}`);
    const same = await fetchText(`/v1/tasks/${t.id}/archive`, { range: "bytes=0-9", "if-range": `"${t.archive?.sha256}"` });
    expect([same.status, same.body.length]).toEqual([206, 10]);
    const changed = await fetchText(`/v1/tasks/${t.id}/archive`, { range: "bytes=0-9", "if-range": '"another"' });
    expect([changed.status, changed.body.length]).toEqual([200, size]);
    const several = await fetchText(`/v1/tasks/${t.id}/archive`, { range: "bytes=0-9,100-199" });
    expect([several.status, several.body.length]).toEqual([200, size]);
    const malformed = await fetchText(`/v1/tasks/${t.id}/archive`, { range: "bytes=abc" });
    expect([malformed.status, malformed.body.length]).toEqual([200, size]);
  });

  it("starts a task from an earlier task's archive (fromTask), read from the store", async () => {
    const h = on();
    const a = await h.waitFinished((await h.submit({ command: ["sh", "-c", "mkdir -p src && echo seeded > src/s.txt"] })).id);
    const b = await h.waitFinished((await h.submit({ command: ["cat", "src/s.txt"], fromTask: a.id })).id);
    expect(b).toMatchObject({ status: "succeeded", exitCode: 0 });
    expect((await fetchText(`/v1/tasks/${b.id}/logs`)).body.toString()).toBe("seeded\n");
    // Nothing of the restore is left beside the archives (an object store's copy is a temp file there).
    expect((await readdir(h.deps.config.dirs.archives)).filter((f) => f.startsWith("."))).toEqual([]);
  });
});

describe("archives in an S3-compatible store", () => {
  it("are objects named after the workspace under the store's prefix, with their sha256 as metadata", async () => {
    const t = await hs3.waitFinished((await hs3.submit({ command: ["sh", "-c", "echo x > x.txt"] })).id);
    const key = `archives/${t.workspace}.tar.gz`;
    expect(await s3.keys(bucket, key)).toEqual([key]);
    expect(await s3.metadata(bucket, key)).toEqual({ sha256: t.archive?.sha256 });
    // Nothing in the local archive directory: the store holds it.
    expect(await readdir(hs3.deps.config.dirs.archives)).toEqual([]);
  });
});

describe("a task's output", () => {
  it("records a non-zero exit as failed with its exit code", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "exit 3"] })).id);
    expect(t).toMatchObject({ status: "failed", exitCode: 3, reason: null });
  });

  it("keeps stderr apart from stdout and the output of a task that exits at once", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "echo out; echo err >&2"] })).id);
    const entries = await h.services.logs.readAfter(t.id, "0");
    const text = (s: string) =>
      entries
        .filter((e) => e.stream === s)
        .map((e) => ("text" in e ? e.text : ""))
        .join("");
    expect(text("stdout")).toBe("out\n");
    expect(text("stderr")).toBe("err\n");
    const quick = await h.waitFinished((await h.submit({ command: ["echo", "instant"] })).id);
    expect((await fetchText(`/v1/tasks/${quick.id}/logs`)).body.toString()).toBe("instant\n");
  });

  it("keeps a UTF-8 character whole when it is split across writes", async () => {
    // "é" is 0xC3 0xA9: print the two bytes in separate writes, with a pause between them.
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "printf '\\303'; sleep 0.2; printf '\\251\\n'"] })).id);
    expect((await fetchText(`/v1/tasks/${t.id}/logs`)).body.toString("utf8")).toBe("é\n");
  });

  it("caps output at BERTH_MAX_OUTPUT_BYTES, says so, and lets the task finish", async () => {
    const t = await h.waitFinished(
      (await h.submit({ command: ["sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a; echo; echo finished > end.txt"] })).id,
    );
    expect(t).toMatchObject({ status: "succeeded", exitCode: 0, reason: "output_truncated", outputTruncated: true });
    const body = (await fetchText(`/v1/tasks/${t.id}/logs`)).body;
    // The task's 100,000 bytes, then berth's note that the rest was dropped.
    expect(body.toString()).toBe(
      `${"a".repeat(100_000)}\n[berth] output passed BERTH_MAX_OUTPUT_BYTES; what the task printed after that was dropped\n`,
    );
    const entries = await h.services.logs.readAfter(t.id, "0", 10_000);
    expect(entries.some((e) => e.stream === "system" && e.text.includes("BERTH_MAX_OUTPUT_BYTES"))).toBe(true);
    expect(await readFile(path.join(h.deps.config.dirs.workspaces, t.workspace, "end.txt"), "utf8")).toBe("finished\n");
  });

  it("seeds the workspace with files and env", async () => {
    const t = await h.waitFinished(
      (
        await h.submit({
          command: ["sh", "-c", 'cat input/data.txt; echo "$GREETING"'],
          files: { "input/data.txt": "from a file\n" },
          env: { GREETING: "hello env" },
        })
      ).id,
    );
    expect(t.status).toBe("succeeded");
    expect((await fetchText(`/v1/tasks/${t.id}/logs`)).body.toString()).toBe("from a file\nhello env\n");
  });
});

describe("how a task can end", () => {
  it("stops a task at its timeout and records timed_out", async () => {
    // It ends long before its 600 s (waitFinished gives up after 60 s).
    const t = await h.waitFinished((await h.submit({ command: ["sleep", "600"], timeoutSeconds: 2 })).id);
    expect(t).toMatchObject({ status: "timed_out", reason: "timeout" });
    expect(t.archive).not.toBeNull();
  });

  it("reports a memory bomb as oom_killed", async () => {
    const t = await h.waitFinished(
      (
        await h.submit({
          command: ["python3", "-c", "x = []\nwhile True: x.append(bytearray(16*1024*1024))"],
          limits: { memoryMb: 64 },
        })
      ).id,
    );
    expect(t).toMatchObject({ status: "failed", reason: "oom_killed" });
  });

  it("does not call a plain SIGKILL exit (137) out of memory", async () => {
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "kill -9 $$"] })).id);
    expect(t.exitCode).toBe(137);
    expect(t.reason).toBeNull();
    expect(t.status).toBe("failed");
  });

  it("fails a task whose image is missing with image_not_found", async () => {
    const local = await startHarness({ BERTH_ALLOWED_IMAGES: "berth-runner:latest,berth-missing-*" }, { worker: true });
    try {
      const t = await local.waitFinished((await local.submit({ command: ["true"], image: "berth-missing-image:nope" })).id);
      expect(t).toMatchObject({ status: "failed", reason: "image_not_found" });
      expect(t.message).toContain("berth-missing-image:nope");
    } finally {
      await local.close();
    }
  });
});

describe("the box a task runs in", () => {
  it("runs as the runner user with no capabilities, no network but lo, a read-only root and a writable /tmp", async () => {
    const script = [
      "id -u; id -g",
      "grep CapEff /proc/self/status",
      "ls /sys/class/net | tr '\\n' ' '; echo",
      "touch /etc/x 2>&1 || true",
      "touch /tmp/ok && echo tmp-writable",
      "grep NoNewPrivs /proc/self/status",
      "pwd",
    ].join("; ");
    const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", script] })).id);
    const out = (await fetchText(`/v1/tasks/${t.id}/logs`)).body.toString();
    const lines = out.trim().split("\n");
    expect(lines[0]).toBe("1000");
    expect(lines[1]).toBe("1000");
    expect(lines[2]).toMatch(/^CapEff:\s+0000000000000000$/);
    expect(lines[3]?.trim()).toBe("lo");
    expect(lines[4]).toContain("Read-only file system");
    expect(lines[5]).toBe("tmp-writable");
    expect(lines[6]).toMatch(/^NoNewPrivs:\s+1$/);
    expect(lines[7]).toBe("/workspace");
  });

  it("stops a fork bomb at the process limit", async () => {
    const t = await h.waitFinished(
      (
        await h.submit({
          command: ["sh", "-c", "for i in $(seq 1 200); do sleep 30 & done 2>/dev/null; echo spawned; ps -e --no-headers | wc -l"],
          limits: { pids: 32 },
          timeoutSeconds: 20,
        })
      ).id,
    );
    const out = (await fetchText(`/v1/tasks/${t.id}/logs`)).body.toString();
    const count = Number(out.trim().split("\n").pop());
    expect(count).toBeLessThanOrEqual(32);
  });

  it("stores a symbolic link to /etc/passwd as a link, never its target, and leaves a FIFO out without hanging", async () => {
    const t = await h.waitFinished(
      (await h.submit({ command: ["sh", "-c", "ln -s /etc/passwd passwd-link; mkfifo pipe; echo x > real.txt"] })).id,
    );
    expect(t.status).toBe("succeeded");
    expect(t.archiveSkipped.map((s) => s.path)).toContain("pipe");
    const file = path.join(h.root, `${t.id}.tgz`);
    await import("node:fs/promises").then(async (fs) => fs.writeFile(file, (await fetchText(`/v1/tasks/${t.id}/archive`)).body));
    const entries: { path: string; type: string; linkpath: string }[] = [];
    await list({ file, onReadEntry: (e) => void entries.push({ path: e.path, type: e.type, linkpath: e.header.linkpath ?? "" }) });
    expect(entries.find((e) => e.path === "passwd-link")).toEqual({ path: "passwd-link", type: "SymbolicLink", linkpath: "/etc/passwd" });
    expect(entries.map((e) => e.path).sort()).toEqual(["passwd-link", "real.txt"]);
  });
});
