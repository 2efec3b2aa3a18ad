// What the task's container finds in its workspace, kept (in memory, compressed) until the workspace is archived,
// so that the archive pass can say what the task changed (archive/changes.ts). Taken after `files` and the
// fromTask restore are written, before the container starts.
import type { Logger } from "pino";
import type { ArchiveStore } from "../archive/archive-store.js";
import { gzipManifest, type StartState } from "../archive/changes.js";
import { readManifest } from "../archive/changes-read.js";
import type { TaskSpec } from "../domain/task.js";
import { takeStartManifest } from "../workspace/start-manifest.js";

/** A starting workspace larger than this is not compared (the restore itself takes at most 200,000 entries). */
const START_MAX_ENTRIES = 250_000;

/** What the restore from an earlier task wrote: that task's workspace and the paths of the files it wrote. */
export interface Restored {
  readonly id: string;
  readonly workspace: string;
  readonly files: ReadonlySet<string>;
}

let emptyStart: Promise<Buffer> | undefined;

/**
 * The starting state of the workspace at `root`, or null when it cannot be taken (the task then runs all the same;
 * its changes are not listed). Never throws.
 */
export async function takeStartState(opts: {
  root: string;
  spec: TaskSpec;
  restored: Restored | null;
  archives: ArchiveStore;
  timeoutMs: number;
  log: Logger;
}): Promise<StartState | null> {
  const { spec, restored } = opts;
  const fromTask = restored ? { id: restored.id, workspace: restored.workspace } : null;
  if (Object.keys(spec.files).length === 0 && !restored) {
    emptyStart ??= gzipManifest([]);
    return { manifest: await emptyStart, files: {}, fromTask: null };
  }
  const signal = AbortSignal.timeout(opts.timeoutMs);
  try {
    const known = new Map<string, { size: number; sha256: string | null }>();
    if (restored && restored.files.size > 0) {
      const found = await readManifest(opts.archives, restored.workspace, signal, (e) => {
        if (e.type === "file" && restored.files.has(e.path)) known.set(e.path, { size: e.size, sha256: e.sha256 });
      }).catch((err: unknown) => {
        opts.log.warn({ err }, "the fromTask's manifest could not be read; its files are hashed from the workspace");
        return false;
      });
      if (!found) known.clear();
    }
    const entries = await takeStartManifest({
      root: opts.root,
      files: spec.files,
      fromTask: restored !== null,
      restored: known,
      maxEntries: START_MAX_ENTRIES,
      signal,
    });
    if (!entries) {
      opts.log.warn({ maxEntries: START_MAX_ENTRIES }, "the starting workspace is too large to compare; changes are not listed");
      return null;
    }
    return { manifest: await gzipManifest(entries), files: spec.files, fromTask };
  } catch (err) {
    opts.log.warn({ err }, "the starting workspace's manifest could not be taken; changes are not listed");
    return null;
  }
}
