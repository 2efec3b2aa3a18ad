// The directories behind tenants' shared caches (BERTH_CACHE_DIR/<volume name>): made by berth, owned by the
// runner user, and removed without following anything a task left in them.
import { chown, lstat, mkdir, rename } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { removeTree, type RunnerIds } from "./workspace.js";

const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,199}$/;
/** A cache directory being removed is first renamed to this, so that no task can start with it half-removed. */
const TRASH_PREFIX = ".removing-";

/** Absolute path of a cache's directory, refusing any name berth does not make. */
export function cacheDirPath(root: string, volume: string): string {
  if (!VOLUME_NAME.test(volume)) throw new Error(`not a cache volume name: ${JSON.stringify(volume)}`);
  return path.join(root, volume);
}

/**
 * Makes the cache's directory (0700) if it is not there, and gives it to the runner user. Only the directory itself
 * is changed, never followed (it lies in berth's own root, which tasks never see; they see only its contents).
 */
export async function prepareCacheDir(root: string, volume: string, runner: RunnerIds): Promise<string> {
  const dir = cacheDirPath(root, volume);
  await mkdir(root, { recursive: true, mode: 0o711 });
  await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory`);
  if (process.getuid?.() === 0 && (st.uid !== runner.uid || st.gid !== runner.gid)) await chown(dir, runner.uid, runner.gid);
  return dir;
}

/**
 * Removes a cache's directory: renamed out of the way first (a task preparing the same cache afterwards makes a
 * fresh one), then removed with GNU rm, which never follows a symbolic link. Missing is success.
 */
export async function removeCacheDir(root: string, volume: string): Promise<void> {
  const dir = cacheDirPath(root, volume);
  const trash = path.join(root, `${TRASH_PREFIX}${volume}-${randomBytes(6).toString("hex")}`);
  try {
    await rename(dir, trash);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
    throw err;
  }
  await removeTree(trash);
}
