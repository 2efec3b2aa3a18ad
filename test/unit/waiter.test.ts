// The warm pool's waiter, run by this host's /bin/sh (dash, as in the runner image): what it execs is exactly the
// task's command and environment, a script cut short runs nothing, and the task's stdin is at its end.
import { access, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { MAX_WARM_INPUT_BYTES, WAITER_INCOMPLETE_EXIT, waiterCommand, warmStartInput } from "../../src/runner/waiter.js";

const NONCE = "0123456789abcdef0123456789abcdef";
/** What an image would put in the container's environment. */
const IMAGE_ENV = { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: "/tmp", LANG: "C.UTF-8" };
/** Prints its argv (after the script) and environment as JSON, and what it read from stdin. */
const PROBE = [
  process.execPath,
  "-e",
  'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify({argv:process.argv.slice(1),env:process.env,stdin:s})))',
];

async function runWaiter(input: Buffer, cwd = tmpdir()) {
  const [sh, ...args] = waiterCommand(NONCE);
  return execa(sh as string, args, { input, env: IMAGE_ENV, extendEnv: false, cwd, reject: false });
}

describe("the waiter", () => {
  it("execs the command with exactly its arguments and the image's environment plus the task's", async () => {
    const args = [
      "plain",
      "",
      " spaced  out ",
      "it's",
      'a "quote"',
      "back\\slash\\n",
      "new\nline\n\n",
      "$HOME `id` $(id) *",
      "ünï©ødé",
      "-x",
    ];
    const env = { GREETING: "hello 'world'\nsecond line\\", HOME: "/home/task", IFS: ":", EMPTY: "", PS1: "$ " };
    const input = warmStartInput({ command: [...PROBE, ...args], env, nonce: NONCE, imageSetsPwd: false });
    expect(input).not.toBeNull();
    const res = await runWaiter(input as Buffer);
    expect(res.stderr).toBe("");
    expect(res.exitCode).toBe(0);
    const seen = JSON.parse(res.stdout) as { argv: string[]; env: Record<string, string>; stdin: string };
    expect(seen.argv).toEqual(args);
    // As the engine would set it: no PWD (the shell's), the task's values over the image's.
    expect(seen.env).toEqual({ ...IMAGE_ENV, ...env });
    expect(seen.stdin).toBe("");
  });

  it("keeps a PWD the task sets", async () => {
    const input = warmStartInput({ command: PROBE, env: { PWD: "/somewhere" }, nonce: NONCE, imageSetsPwd: false });
    const res = await runWaiter(input as Buffer);
    expect((JSON.parse(res.stdout) as { env: Record<string, string> }).env.PWD).toBe("/somewhere");
  });

  it("exits with the command's own exit code, and 127 for a command that does not exist", async () => {
    const failing = warmStartInput({ command: ["sh", "-c", "exit 7"], env: {}, nonce: NONCE, imageSetsPwd: false });
    expect((await runWaiter(failing as Buffer)).exitCode).toBe(7);
    const missing = warmStartInput({ command: ["no-such-command-here"], env: {}, nonce: NONCE, imageSetsPwd: false });
    const res = await runWaiter(missing as Buffer);
    expect(res.exitCode).toBe(127);
    expect(res.stderr).toContain("no-such-command-here");
  });

  it("runs nothing from a script cut short, wherever it is cut", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "berth-waiter-"));
    try {
      const marker = path.join(dir, "ran");
      const input = warmStartInput({ command: ["touch", marker], env: { A: "1", B: "two words" }, nonce: NONCE, imageSetsPwd: false });
      expect(input).not.toBeNull();
      const full = input as Buffer;
      for (let cut = 0; cut < full.length; cut++) {
        const res = await runWaiter(full.subarray(0, cut), dir);
        expect({ cut, exitCode: res.exitCode }).toEqual({ cut, exitCode: WAITER_INCOMPLETE_EXIT });
      }
      await expect(access(marker)).rejects.toThrow(/ENOENT/);
      expect((await runWaiter(full, dir)).exitCode).toBe(0);
      await access(marker);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("leaves to the cold path what a shell could not pass on exactly", () => {
    const fits = (command: string[], env: Record<string, string> = {}) =>
      warmStartInput({ command, env, nonce: NONCE, imageSetsPwd: false }) !== null;
    expect(fits(["true"])).toBe(true);
    expect(fits(["-true"])).toBe(false); // exec may read it as an option
    expect(fits([""])).toBe(false);
    expect(fits(["echo", "a\0b"])).toBe(false);
    expect(fits(["true"], { OPTIND: "x" })).toBe(false);
    expect(fits(["true"], { PPID: "1" })).toBe(false);
    expect(fits(["true"], { "not-a-name": "1" })).toBe(false);
    expect(fits(["echo", "x".repeat(MAX_WARM_INPUT_BYTES)])).toBe(false);
  });

  it("refuses a nonce anyone could guess", () => {
    expect(() => waiterCommand("short")).toThrow(/nonce/);
  });
});
