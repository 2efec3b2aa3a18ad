// The workspace root as a nosuid,nodev mount of itself. A bind mount copies the flags of the mount its source lies
// on, so every workspace the engine bind-mounts at /workspace is then nosuid,nodev too, with no mount per task.
// Defence in depth: tasks already run without capabilities and with no-new-privileges.
import { readFile, realpath } from "node:fs/promises";
import { execa } from "execa";

export type RootMount = "already" | "mounted" | "not_root" | "failed";

/** The mount options of the mount whose mount point is exactly `dir` (the top one, if several are stacked). */
export async function mountOptionsAt(dir: string): Promise<string[] | null> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  let found: string[] | null = null;
  for (const line of info.split("\n")) {
    // id parent major:minor root mount-point options ... ; octal escapes (\040) stand for spaces and the like.
    const fields = line.split(" ");
    const point = fields[4]?.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (point === dir) found = (fields[5] ?? "").split(",");
  }
  return found;
}

/**
 * Makes `root` a mount with nosuid and nodev, unless it already is one. Needs root; anything else is reported, not
 * thrown (a worker still runs its tasks without it). Returns what it did.
 */
export async function ensureNoSuidRoot(root: string): Promise<RootMount> {
  const dir = await realpath(root);
  const options = await mountOptionsAt(dir);
  if (options?.includes("nosuid") && options.includes("nodev")) return "already";
  if (process.getuid?.() !== 0) return "not_root";
  // util-linux binds, then remounts the new mount with the flags (a single bind ignores them).
  const res = await execa("mount", ["--bind", "-o", "nosuid,nodev", "--", dir, dir], { reject: false });
  return res.exitCode === 0 ? "mounted" : "failed";
}

/** Undoes {@link ensureNoSuidRoot}'s mount (lazily: open files and running containers keep working). */
export async function releaseNoSuidRoot(root: string): Promise<void> {
  const dir = await realpath(root);
  const options = await mountOptionsAt(dir);
  if (options?.includes("nosuid")) await execa("umount", ["-l", "--", dir], { reject: false });
}
