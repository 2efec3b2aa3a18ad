// Workspace directories: created private to the runner user, seeded before any untrusted code runs.
// After a task's container has run, the server never writes into its workspace again.
import { chown, lstat, mkdir, open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { TaskFailure } from "../errors.js";
import { WORKSPACE_PATTERN } from "../domain/task.js";

export interface RunnerIds {
  readonly uid: number;
  readonly gid: number;
}

export const parseRunnerUser = (user: string): RunnerIds => {
  const [uid = "1000", gid = "1000"] = user.split(":");
  return { uid: Number(uid), gid: Number(gid) };
};

/** Absolute path of a workspace, refusing any name berth did not make. */
export function workspacePath(root: string, name: string): string {
  if (!WORKSPACE_PATTERN.test(name)) throw new Error(`not a workspace name: ${JSON.stringify(name)}`);
  return path.join(root, name);
}

export const archivePath = (root: string, workspace: string): string => {
  if (!WORKSPACE_PATTERN.test(workspace)) throw new Error(`not a workspace name: ${JSON.stringify(workspace)}`);
  return path.join(root, `${workspace}.tar.gz`);
};

const isRoot = () => process.getuid?.() === 0;

/**
 * Creates the workspace (0700, owned by the runner user) and writes the `files` inputs.
 * A leftover directory from an earlier attempt of the same task is removed first: its container is gone.
 */
export async function prepareWorkspace(opts: {
  root: string;
  name: string;
  runner: RunnerIds;
  files: Readonly<Record<string, string>>;
}): Promise<string> {
  const dir = workspacePath(opts.root, opts.name);
  try {
    await mkdir(opts.root, { recursive: true, mode: 0o711 });
    await removeTree(dir);
    await mkdir(dir, { mode: 0o700 });
    await writeInputs(dir, opts.files, opts.runner);
    if (isRoot()) await chown(dir, opts.runner.uid, opts.runner.gid);
    return dir;
  } catch (err) {
    throw new TaskFailure("workspace_failed", `Could not prepare workspace ${opts.name}: ${(err as Error).message}`, { cause: err });
  }
}

/** The directory, inside the workspace root, that holds the warm pool's directories (one filesystem, one mount). */
export const POOL_DIR = ".pool";

/**
 * A fresh, empty directory for a warm container's /workspace (0700, owned by the runner user), at
 * `<root>/.pool/<group>/<name>`, so it can later be renamed into a workspace on the same filesystem.
 */
export async function makePoolDir(opts: { root: string; group: string; name: string; runner: RunnerIds }): Promise<string> {
  const parent = path.join(opts.root, POOL_DIR, opts.group);
  await mkdir(parent, { recursive: true, mode: 0o711 });
  const dir = path.join(parent, opts.name);
  await mkdir(dir, { mode: 0o700 });
  if (isRoot()) await chown(dir, opts.runner.uid, opts.runner.gid);
  return dir;
}

/**
 * Makes a warm container's pool directory the task's workspace: a leftover of an earlier attempt is removed, the
 * directory is renamed (a bind mount follows the directory, so the container's /workspace is now the workspace)
 * and the `files` inputs are written. Only while the container's waiter has run nothing.
 */
export async function adoptWorkspace(opts: {
  root: string;
  name: string;
  from: string;
  runner: RunnerIds;
  files: Readonly<Record<string, string>>;
}): Promise<string> {
  const dir = workspacePath(opts.root, opts.name);
  try {
    await removeTree(dir);
    await rename(opts.from, dir);
    await writeInputs(dir, opts.files, opts.runner);
    return dir;
  } catch (err) {
    throw new TaskFailure("workspace_failed", `Could not prepare workspace ${opts.name}: ${(err as Error).message}`, { cause: err });
  }
}

async function writeInputs(dir: string, files: Readonly<Record<string, string>>, runner: RunnerIds): Promise<void> {
  for (const [rel, content] of Object.entries(files)) await writeInput(dir, rel, content, runner);
}

/** Writes one input file; `rel` was validated by the API (relative, no `..`). The tree is fresh and ours. */
async function writeInput(dir: string, rel: string, content: string, runner: RunnerIds): Promise<void> {
  const parts = rel.split("/").filter(Boolean);
  let cur = dir;
  for (const part of parts.slice(0, -1)) {
    cur = path.join(cur, part);
    await mkdir(cur, { recursive: true, mode: 0o755 });
    if (isRoot()) await chown(cur, runner.uid, runner.gid);
  }
  const file = path.join(dir, ...parts);
  const fh = await open(file, "wx", 0o644);
  try {
    await fh.writeFile(content, "utf8");
  } finally {
    await fh.close();
  }
  if (isRoot()) await chown(file, runner.uid, runner.gid);
}

/** Gives every entry of a freshly extracted tree to the runner user, never following a symbolic link. */
export async function chownTree(dir: string, runner: RunnerIds): Promise<void> {
  if (!isRoot()) return;
  await execa("chown", ["-R", "--no-dereference", `${runner.uid}:${runner.gid}`, "--", dir]);
}

/**
 * Removes a tree that untrusted code may have written: GNU rm never follows symbolic links, handles names
 * that are not UTF-8 and very deep trees, and stays on one filesystem. Missing is success.
 * Call only once nothing can write into the tree any more (its container is gone).
 */
export async function removeTree(dir: string): Promise<void> {
  const err = (await removeTrees([dir])).get(dir);
  if (err) throw err;
}

/** Paths per `rm` process, and a bound on their total length well under ARG_MAX. */
const RM_MAX_PATHS = 512;
const RM_MAX_ARG_BYTES = 256 * 1024;

/**
 * {@link removeTree} for many trees, plus `files` (archives) handed to `rm -rf` as they are: whatever lies at such
 * a path goes, a symbolic link as itself. As few `rm` processes as the argument limit allows (one per up to 512
 * paths), run one after another; callers wanting parallel removal call this concurrently.
 * Returns the paths that could not be removed, each with its own error; every other path is gone.
 */
export async function removeTrees(dirs: readonly string[], files: readonly string[] = []): Promise<Map<string, Error>> {
  const failed = new Map<string, Error>();
  const isTree = await Promise.all(
    dirs.map(async (dir) => {
      try {
        if ((await lstat(dir)).isDirectory()) return true;
        // A link (or anything else) where a directory was expected is removed itself, never what it points to.
        await rm(dir, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") failed.set(dir, err as Error);
      }
      return false;
    }),
  );
  const trees = dirs.filter((_, i) => isTree[i]);
  if (!isRoot()) {
    // Without root, a mode-000 directory cannot be listed: open the modes up first (chmod -R never follows links).
    for (const chunk of argChunks(trees)) await execa("chmod", ["-R", "u+rwx", "--", ...chunk], { reject: false });
  }
  for (const chunk of argChunks([...trees, ...files])) await rmRf(chunk, failed);
  return failed;
}

/** Splits paths into groups small enough for one command line. */
function argChunks(paths: readonly string[]): string[][] {
  const chunks: string[][] = [];
  let cur: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    const len = Buffer.byteLength(p) + 1;
    if (cur.length > 0 && (cur.length >= RM_MAX_PATHS || bytes + len > RM_MAX_ARG_BYTES)) {
      chunks.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += len;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/**
 * One `rm -rf` for all `paths`. rm carries on past a path it cannot remove, so when it fails, whatever is gone
 * was removed; each path still there is tried on its own, so that its error is its own.
 */
async function rmRf(paths: readonly string[], failed: Map<string, Error>): Promise<void> {
  const res = await execa("rm", ["-rf", "--one-file-system", "--", ...paths], { reject: false });
  if (res.exitCode === 0) return;
  for (const p of paths) {
    const left = await lstat(p).then(
      () => true,
      (err: NodeJS.ErrnoException) => err.code !== "ENOENT",
    );
    if (!left) continue;
    const one = await execa("rm", ["-rf", "--one-file-system", "--", p], { reject: false });
    if (one.exitCode !== 0) failed.set(p, new Error(`rm -rf ${p} failed: ${one.stderr.slice(0, 500)}`));
  }
}
