// Hostile tasks stay in their box: a workspace built to hurt the host is archived, listed and removed in bounded
// time without reading or writing any host file, and what was left out is reported.
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { listArchive } from "../../src/archive/read-archive.js";
import { sweep } from "../../src/cleanup/sweep.js";
import { startHarness, type Harness } from "../helpers/harness.js";

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

let h: Harness;
let canary: string;

beforeAll(async () => {
  // A disk limit large enough for the 20 GB sparse file (disk limits have their own tests in limits.test.ts).
  h = await startHarness({ BERTH_TASK_TIMEOUT_SECONDS: "300", BERTH_DEFAULT_DISK_MB: "32768", BERTH_MAX_DISK_MB: "32768" });
  canary = await mkdtemp(path.join(tmpdir(), "berth-canary-"));
  await writeFile(path.join(canary, "keep.txt"), "canary\n");
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  await rm(canary, { recursive: true, force: true });
  expect(left).toEqual([]);
});

// Runs as the runner user inside the task's container.
const HOSTILE = String.raw`
set -e
ln -s /etc/passwd passwd-link
ln -s / root-link
ln -s ${"$"}CANARY canary-link
mkdir -p deep1/deep2 && ln -s ${"$"}CANARY deep1/deep2/canary-link
mkdir -p a/b && echo shared > a/b/f && mkdir c && ln a/b/f c/hard && ln a/b/f hard-top
mkfifo fifo
python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind('sock')"
touch null console tty0
mkdir -p m/n && echo secret > m/n/f && chmod 000 m/n/f m/n m
printf x > "$(printf 'bad\377name')"
touch "$(printf 'new\nline')"
truncate -s 20G sparse.bin
python3 - <<'PY'
import os
os.mkdir("many")
for i in range(100000):
    open(f"many/{i}", "w").close()
os.mkdir("deep"); os.chdir("deep")
for i in range(10000):
    os.mkdir("d"); os.chdir("d")
open("bottom.txt", "w").write("bottom\n")
PY
# A directory that becomes a symlink (and back) while berth might look at it.
mkdir swap && echo inside > swap/file && mv swap swap-dir && ln -s /etc swap
echo built
`;

it("archives, lists and removes a hostile workspace in bounded time, never touching a host file", async () => {
  const submitted = await h.submit({ command: ["sh", "-c", HOSTILE], env: { CANARY: canary }, timeoutSeconds: 300 });
  const t = await h.waitFinished(submitted.id, 300_000);
  expect(t).toMatchObject({ status: "succeeded", exitCode: 0 });

  // Archive: links stored as links, FIFO/socket/oversized sparse file left out and reported.
  expect(t.archive).not.toBeNull();
  const skipped = new Map(t.archiveSkipped.map((s) => [s.path, s.why]));
  expect([...skipped.keys()]).toEqual(expect.arrayContaining(["fifo", "sock", "sparse.bin"]));
  const entries = await listArchive(path.join(h.deps.config.dirs.archives, `${t.workspace}.tar.gz`));
  const byPath = new Map(entries.map((e) => [e.path.replace(/\/$/, ""), e]));
  expect(byPath.get("passwd-link")).toMatchObject({ type: "SymbolicLink", linkpath: "/etc/passwd" });
  expect(byPath.get("root-link")).toMatchObject({ type: "SymbolicLink", linkpath: "/" });
  expect(byPath.get("swap")).toMatchObject({ type: "SymbolicLink", linkpath: "/etc" });
  expect(byPath.get("m/n/f")?.type).toBe("File");
  expect(entries.filter((e) => e.path.startsWith("many/") && e.type === "File").length).toBe(100_000);
  // Paths longer than the system's PATH_MAX cannot be archived: they are left out and reported, not fatal.
  expect(entries.some((e) => e.path.startsWith("deep/d/d/"))).toBe(true);
  expect(t.archiveSkipped.some((s) => s.path.startsWith("deep/d/d/") && s.why.length > 0)).toBe(true);
  expect(entries.every((e) => !e.path.startsWith("/") && !e.path.split("/").includes(".."))).toBe(true);
  // Nothing of the host's /etc/passwd went into the archive.
  expect(entries.find((e) => e.path === "passwd-link")?.size ?? 0).toBe(0);

  // Files API: bounded listing, links listed but never followed.
  const listing = await h.request("GET", `/v1/tasks/${t.id}/files`);
  expect(listing.statusCode).toBe(200);
  expect(listing.json().truncated).toBe(true);
  for (const p of ["passwd-link", "root-link/etc/passwd", "swap/passwd", "canary-link/keep.txt", "deep1/deep2/canary-link/keep.txt"]) {
    expect((await h.request("GET", `/v1/tasks/${t.id}/files/${p}`)).statusCode).toBe(404);
  }
  expect((await h.request("GET", `/v1/tasks/${t.id}/files/fifo`)).statusCode).toBe(404);
  expect((await h.request("GET", `/v1/tasks/${t.id}/files/swap-dir/file`)).body).toBe("inside\n");

  // Cleanup: everything removed, the canary (reachable only through the task's links) intact.
  const result = await sweep(h.deps, h.services, { now: Date.now() + 400 * 86_400_000 });
  expect(result.errors).toEqual([]);
  expect(result.removed.map((r) => r.taskId)).toContain(t.id);
  expect((await h.get(t.id)).status).toBe("expired");
  await expect(stat(path.join(h.deps.config.dirs.workspaces, t.workspace))).rejects.toThrow(/ENOENT/);
  expect(await readdir(canary)).toEqual(["keep.txt"]);
  expect(await readFile(path.join(canary, "keep.txt"), "utf8")).toBe("canary\n");
  expect((await stat("/etc/passwd")).isFile()).toBe(true);
}, 420_000);

it("writes nothing to the workspace after the task is recorded as ended, even from a background process", async () => {
  const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", "(sleep 3; echo late > late.txt) & echo main done"] })).id);
  expect(t.status).toBe("succeeded");
  // By the time the task is recorded as ended its container is gone from the engine, and with it every process it
  // held (the background writer included): nothing is left that could write into the workspace.
  expect(await h.taskContainers(t.id)).toEqual([]);
  const ws = path.join(h.deps.config.dirs.workspaces, t.workspace);
  expect(await readdir(ws)).toEqual([]);
});

it("archives the workspace exactly as the task left it, even while background processes were writing at its exit", async () => {
  // Four appenders and one process rewriting a file in place, all still running when the main process exits.
  const script = `
for i in 1 2 3 4; do (while :; do echo "line from $i" >> "append-$i.txt"; done) & done
python3 -c "
import itertools, os
fd = os.open('churn.bin', os.O_WRONLY | os.O_CREAT, 0o644)
for i in itertools.count(): os.pwrite(fd, os.urandom(65536), (i % 8) * 65536)
" &
sleep 1
echo main done`;
  const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", script] })).id);
  expect(t.status).toBe("succeeded");
  expect(t.archive).not.toBeNull();
  const ws = path.join(h.deps.config.dirs.workspaces, t.workspace);
  const out = await mkdtemp(path.join(tmpdir(), "berth-extract-"));
  try {
    await execa("tar", ["-xzf", path.join(h.deps.config.dirs.archives, `${t.workspace}.tar.gz`), "-C", out]);
    const names = (await readdir(ws)).sort();
    expect(names).toEqual(["append-1.txt", "append-2.txt", "append-3.txt", "append-4.txt", "churn.bin"]);
    expect((await readdir(out)).sort()).toEqual(names);
    for (const name of names) {
      expect(sha256(await readFile(path.join(out, name)))).toBe(sha256(await readFile(path.join(ws, name))));
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

it("cannot mount, become root or keep privileges", async () => {
  const script = [
    "mount -t tmpfs none /tmp 2>/dev/null && echo MOUNTED || echo mount-refused",
    "python3 -c 'import os; os.setuid(0)' 2>/dev/null && echo ROOT || echo setuid-refused",
    "grep NoNewPrivs /proc/self/status",
    "unshare -r true 2>/dev/null && echo UNSHARED || echo unshare-refused",
  ].join("; ");
  const t = await h.waitFinished((await h.submit({ command: ["sh", "-c", script] })).id);
  const out = (await h.request("GET", `/v1/tasks/${t.id}/logs`)).body.split("\n");
  expect(out[0]).toBe("mount-refused");
  expect(out[1]).toBe("setuid-refused");
  expect(out[2]).toMatch(/^NoNewPrivs:\s+1$/);
  expect(out[3]).toBe("unshare-refused");
});
