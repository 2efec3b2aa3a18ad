// Archives in this host's BERTH_ARCHIVE_DIR (the default store): `<dir>/<workspace>.tar.gz` and its companions
// (`.manifest.gz`, ...), written through a temp file in the same directory (fsync, rename, directory fsync), so the
// name only ever holds a complete file.
import { randomBytes } from "node:crypto";
import { access, constants, lstat, mkdir, open, rename, rm, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { BerthError, errnoOf } from "../errors.js";
import { removeTrees } from "../workspace/workspace.js";
import {
  STORED_KINDS,
  storedName,
  type ArchiveRead,
  type ArchiveStore,
  type ArchiveWriter,
  type ByteRange,
  type StoredKind,
} from "./archive-store.js";

export class LocalArchiveStore implements ArchiveStore {
  readonly kind = "local";
  readonly shared = false;
  readonly description: string;

  constructor(private readonly dir: string) {
    this.description = `the directory ${dir} (BERTH_ARCHIVE_DIR)`;
  }

  locate(workspace: string, kind: StoredKind = "archive"): string {
    return path.join(this.dir, storedName(workspace, kind));
  }

  async begin(workspace: string, signal: AbortSignal, kind: StoredKind = "archive"): Promise<ArchiveWriter> {
    const final = this.locate(workspace, kind);
    // Same directory as the target so rename() is atomic; dot-prefixed so listings ignore it.
    const tmp = path.join(this.dir, `.${path.basename(final)}.tmp-${randomBytes(8).toString("hex")}`);
    signal.throwIfAborted();
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    // O_EXCL: never reuse or follow something already sitting at the temp name.
    let fh: FileHandle | undefined = await open(tmp, "wx", 0o600);
    const closeQuietly = async () => {
      await fh?.close().catch(() => undefined);
      fh = undefined;
    };
    return {
      // writeFile(), not write(): it loops over short writes.
      write: (chunk) => (fh as FileHandle).writeFile(chunk),
      commit: async () => {
        await (fh as FileHandle).sync();
        await (fh as FileHandle).close();
        fh = undefined;
        signal.throwIfAborted();
        await rename(tmp, final);
        try {
          await syncDir(this.dir);
        } catch (err) {
          // The caller will treat the archive as missing: do not leave it behind.
          await rm(final, { force: true }).catch(() => undefined);
          throw err;
        }
      },
      abort: async () => {
        await closeQuietly();
        await rm(tmp, { force: true }).catch(() => undefined);
      },
    };
  }

  async read(workspace: string, range?: ByteRange, _signal?: AbortSignal, kind: StoredKind = "archive"): Promise<ArchiveRead | null> {
    let fh: FileHandle;
    try {
      fh = await open(this.locate(workspace, kind), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if (errnoOf(err) === "ENOENT" || errnoOf(err) === "ELOOP") return null;
      throw err;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new Error(`${this.locate(workspace, kind)} is not a regular file`);
      const stream = fh.createReadStream({ start: range?.start ?? 0, end: range?.end ?? Math.max(0, st.size - 1), autoClose: true });
      return { stream, size: st.size };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async localCopy(workspace: string): Promise<{ path: string; dispose(): Promise<void> } | null> {
    const file = this.locate(workspace);
    const st = await lstat(file).catch(() => null);
    return st?.isFile() ? { path: file, dispose: async () => undefined } : null;
  }

  async remove(workspaces: readonly string[]): Promise<Map<string, Error>> {
    const files = (w: string) => STORED_KINDS.map((kind) => this.locate(w, kind));
    const failed = await removeTrees([], workspaces.flatMap(files));
    return new Map(
      workspaces.flatMap((w) => {
        const err = files(w).find((f) => failed.has(f));
        return err ? [[w, failed.get(err) as Error]] : [];
      }),
    );
  }

  async abortStaleUploads(): Promise<number> {
    return 0;
  }

  async check(): Promise<void> {
    try {
      await access(this.dir, constants.W_OK | constants.X_OK);
    } catch (err) {
      throw new BerthError(
        "dependency_unavailable",
        `The archive store, ${this.description}, is not writable: ${(err as Error).message}.`,
        {
          store: "local",
        },
      );
    }
  }

  close(): void {}
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, "r");
  await d.sync().finally(() => d.close());
}
