// Workspace directories: created private to the runner user, seeded before any untrusted code runs.
// After a task's container has run, the server never writes into its workspace again.
import { chown, lstat, mkdir, open, rm } from "node:fs/promises";
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
    for (const [rel, content] of Object.entries(opts.files)) {
      await writeInput(dir, rel, content, opts.runner);
    }
    if (isRoot()) await chown(dir, opts.runner.uid, opts.runner.gid);
    return dir;
  } catch (err) {
    throw new TaskFailure("workspace_failed", `Could not prepare workspace ${opts.name}: ${(err as Error).message}`, { cause: err });
  }
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
  const st = await lstat(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
  if (!st) return;
  if (!st.isDirectory()) {
    // A link (or anything else) where a directory was expected is removed itself, never what it points to.
    await rm(dir, { force: true });
    return;
  }
  if (!isRoot()) {
    // Without root, a mode-000 directory cannot be listed: open the modes up first (chmod -R never follows links).
    await execa("chmod", ["-R", "u+rwx", "--", dir], { reject: false });
  }
  await rmBatch.remove(dir);
}

/**
 * Runs `rm -rf` for many trees at once: removals requested in the same tick share one process, which is most of
 * the cost of removing small workspaces. If a batch fails, its trees are retried one by one so each caller gets
 * its own error.
 */
class RmBatch {
  private queue: { dir: string; resolve: () => void; reject: (err: Error) => void }[] = [];
  private scheduled = false;

  remove(dir: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ dir, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.queue.splice(0, 256);
    if (this.queue.length > 0) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
    const res = await execa("rm", ["-rf", "--one-file-system", "--", ...batch.map((b) => b.dir)], { reject: false });
    if (res.exitCode === 0) return batch.forEach((b) => b.resolve());
    for (const b of batch) {
      const one = await execa("rm", ["-rf", "--one-file-system", "--", b.dir], { reject: false });
      if (one.exitCode === 0) b.resolve();
      else b.reject(new Error(`rm -rf ${b.dir} failed: ${one.stderr.slice(0, 500)}`));
    }
  }
}

const rmBatch = new RmBatch();

export async function removeFile(file: string): Promise<void> {
  await rm(file, { force: true });
}
