// The `berth` client commands, spawned like a user would (dist/cli/main.js) against a real berth.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa, type Options } from "execa";
import type { TaskView } from "../../src/contract/types.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { waitFor } from "../helpers/wait-for.js";

const ROOT = process.cwd();
const CLI = path.join(ROOT, "dist/cli/main.js");
let h: Harness;
let dir: string;

beforeAll(async () => {
  // jest's globalSetup (and scripts/test) normally built dist/ already; build again only if src/ is newer,
  // so this file never rewrites dist/ under another test's feet. Type errors elsewhere still emit JavaScript.
  if (await isStale(CLI, path.join(ROOT, "src"))) await execa("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: ROOT, reject: false });
  if (!existsSync(CLI)) throw new Error(`${CLI} was not built; run npm run build`);
  h = await startHarness();
  dir = await mkdtemp(path.join(tmpdir(), "berth-cli-test-"));
}, 180_000);

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  expect(left).toEqual([]);
}, 120_000);

function berth(args: string[], opts: Options & { url?: string } = {}) {
  const { url = h.url, ...rest } = opts;
  return execa("node", [CLI, ...args], {
    cwd: dir,
    reject: false,
    timeout: 150_000,
    stripFinalNewline: false,
    ...rest,
    env: { BERTH_URL: url, BERTH_API_KEY: "", ...rest.env },
  });
}

const ID = /^[A-Za-z0-9_-]{8,64}$/;
const noStackTrace = (stderr: unknown) => expect(String(stderr)).not.toMatch(/\n\s+at .+:\d+:\d+/);

describe("submit", () => {
  it("prints the new task's id, and status shows it", async () => {
    const r = await berth(["submit", "--label", "suite=cli", "--", "sh", "-c", "echo hi"]);
    expect(r.exitCode).toBe(0);
    const id = String(r.stdout).trim();
    expect(id).toMatch(ID);
    const view = await h.waitFinished(id, 150_000);
    expect(view.labels).toEqual({ suite: "cli" });
    const status = await berth(["status", id]);
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toMatch(/^status:\s+succeeded$/m);
    const json = JSON.parse(String((await berth(["status", id, "--json"])).stdout)) as TaskView;
    expect(json).toMatchObject({ id, status: "succeeded", exitCode: 0 });
    expect((await berth(["logs", id])).stdout).toBe("hi\n");
  });

  it("--follow streams stdout and stderr separately and exits with the task's exit code", async () => {
    const r = await berth(["submit", "--follow", "--", "sh", "-c", "echo out1; echo err1 >&2; echo out2; exit 7"]);
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toBe("out1\nout2\n");
    expect(r.stderr).toContain("err1\n");
    expect(r.stderr).toMatch(/^berth: task [A-Za-z0-9_-]{8,64}$/m);
    expect(r.stderr).not.toContain("out1");
  });

  it("--follow writes the bytes exactly as printed, also what is not UTF-8", async () => {
    const r = await berth(["submit", "--follow", "--", "sh", "-c", "printf 'a\\377\\376b\\n'; printf '\\300e\\n' >&2"], {
      encoding: "buffer",
    });
    expect(r.exitCode).toBe(0);
    expect(Buffer.from(r.stdout as Uint8Array).equals(Buffer.from([0x61, 0xff, 0xfe, 0x62, 0x0a]))).toBe(true);
    const stderr = Buffer.from(r.stderr as Uint8Array);
    expect(stderr.includes(Buffer.from([0xc0, 0x65, 0x0a]))).toBe(true);
    expect(stderr.toString("latin1")).toMatch(/^berth: task [A-Za-z0-9_-]{8,64}\n/);
  });

  it("--json prints the task view", async () => {
    const r = await berth(["submit", "--json", "--env", "GREETING=hello there", "--timeout", "30", "--", "sh", "-c", 'echo "$GREETING"']);
    expect(r.exitCode).toBe(0);
    const view = JSON.parse(String(r.stdout)) as TaskView;
    expect(view.id).toMatch(ID);
    expect(view.timeoutSeconds).toBe(30);
    await h.waitFinished(view.id, 150_000);
    expect((await berth(["logs", view.id])).stdout).toBe("hello there\n");
  });

  it("--file uploads local text files the task can read", async () => {
    const a = path.join(dir, "data.txt");
    const b = path.join(dir, "notes.md");
    await writeFile(a, "héllo from a file\nline 2\n");
    await writeFile(b, "# notes\n");
    const r = await berth([
      "submit",
      "--file",
      `${a}:input/data.txt`,
      "--file",
      b,
      "--follow",
      "--",
      "sh",
      "-c",
      "cat input/data.txt notes.md",
    ]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("héllo from a file\nline 2\n# notes\n");
  });

  it("refuses a binary --file with a clear message (exit 2)", async () => {
    const bin = path.join(dir, "blob.bin");
    await writeFile(bin, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x00, 0xff, 0xfe]));
    const r = await berth(["submit", "--file", bin, "--", "true"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe(
      `berth: --file ${bin}: not UTF-8 text. Only text files can be uploaded; for binary data, upload it base64-encoded and decode it in the task.\n`,
    );
  });

  it("exits 124 when the task times out", async () => {
    const r = await berth(["submit", "--timeout", "1", "--follow", "--", "sleep", "30"]);
    expect(r.exitCode).toBe(124);
    expect(r.stderr).toMatch(/^berth: task \S+ timed_out/m);
  });

  it("exits 2 with the server's message for invalid input (400)", async () => {
    const expected = (await h.request("POST", "/v1/tasks", { command: ["true"], env: { "1BAD": "x" } })).json().error.message as string;
    const r = await berth(["submit", "--env", "1BAD=x", "--", "true"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe(`berth: ${expected}\n`);
    expect(r.stdout).toBe("");
  });

  it("exits 2 on a usage error", async () => {
    const r = await berth(["submit", "--timeout", "soon", "--", "true"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("--timeout");
  });
});

describe("errors", () => {
  it("exits 69 with a clear message and no stack trace when the server is unreachable", async () => {
    const port = await freePort();
    const r = await berth(["status", "abcdefgh"], { url: `http://127.0.0.1:${port}` });
    expect(r.exitCode).toBe(69);
    expect(r.stderr).toMatch(new RegExp(`^berth: Cannot reach the berth server at http://127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`));
    expect(String(r.stderr).trim().split("\n")).toHaveLength(1);
    noStackTrace(r.stderr);
  });

  it("exits 1 with the server's message for an unknown task", async () => {
    const r = await berth(["status", "doesnotexist123"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^berth: .*doesnotexist123/);
    noStackTrace(r.stderr);
  });
});

describe("status, logs, list, download, cancel, delete", () => {
  it("lists tasks as a table and as JSON, filtered by label", async () => {
    const label = `list-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(String((await berth(["submit", "--label", `run=${label}`, "--", "true"])).stdout).trim());
    const table = await berth(["list", "--label", `run:${label}`]);
    expect(table.exitCode).toBe(0);
    const lines = String(table.stdout).trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+STATUS\s+EXIT\s+CREATED\s+COMMAND$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([...ids].reverse());
    const limited = await berth(["list", "--label", `run:${label}`, "--limit", "2", "--json"]);
    expect((JSON.parse(String(limited.stdout)) as TaskView[]).map((t) => t.id)).toEqual([ids[2], ids[1]]);
    for (const id of ids) await h.waitFinished(id, 150_000);
  });

  it("downloads the archive; its sha256 equals the view's archive.sha256", async () => {
    const id = String(
      (await berth(["submit", "--", "sh", "-c", "mkdir -p src && echo a > src/a.txt && head -c 50000 /dev/urandom > blob"])).stdout,
    ).trim();
    const view = await h.waitFinished(id, 150_000);
    expect(view.archive).not.toBeNull();
    const out = path.join(dir, "named.tar.gz");
    const r = await berth(["download", id, "-o", out]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`${out}\n`);
    expect(r.stderr).toBe(""); // no progress bar: stderr is not a TTY
    const sha = createHash("sha256")
      .update(await readFile(out))
      .digest("hex");
    expect(sha).toBe(view.archive!.sha256);
    const byDefault = await berth(["download", id]);
    expect(byDefault.exitCode).toBe(0);
    expect(
      createHash("sha256")
        .update(await readFile(path.join(dir, `${view.workspace}.tar.gz`)))
        .digest("hex"),
    ).toBe(view.archive!.sha256);
  });

  it("cancels a running task; following it then exits 130; a second cancel is refused", async () => {
    const id = String((await berth(["submit", "--", "sleep", "600"])).stdout).trim();
    const follower = berth(["logs", id, "-f"]);
    await waitFor(
      `task ${id} to run`,
      () => h.get(id),
      (t) => t.status === "running",
      { timeoutMs: 120_000 },
    );
    const r = await berth(["cancel", id]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`${id}\n`);
    const followed = await follower;
    expect(followed.exitCode).toBe(130);
    expect(followed.stderr).toMatch(/^berth: task \S+ canceled/m);
    expect((await h.get(id)).status).toBe("canceled");
    const again = await berth(["cancel", id]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toMatch(/^berth: /);
  });

  it("logs -f exits with a finished task's exit code; delete removes the task", async () => {
    const id = String((await berth(["submit", "--", "sh", "-c", "echo bye; exit 3"])).stdout).trim();
    const followed = await berth(["logs", id, "--follow"]);
    expect(followed.exitCode).toBe(3);
    expect(followed.stdout).toBe("bye\n");
    const del = await berth(["delete", id]);
    expect(del.exitCode).toBe(0);
    expect((await berth(["status", id])).exitCode).toBe(1);
  });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** True when `built` is missing or older than any .ts file under `srcDir`. */
async function isStale(built: string, srcDir: string): Promise<boolean> {
  const builtAt = await stat(built).then(
    (s) => s.mtimeMs,
    () => 0,
  );
  const entries = await readdir(srcDir, { recursive: true, withFileTypes: true });
  for (const e of entries) {
    if (e.isFile() && e.name.endsWith(".ts") && (await stat(path.join(e.parentPath, e.name))).mtimeMs > builtAt) return true;
  }
  return false;
}
