// The archive filesystem fills up: no partial archive is ever served, the workspace is kept, the task says why.
import { mkdir, readdir, readFile, rmdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomUUID } from "node:crypto";
import { execa } from "execa";
import { startHarness, type Harness } from "../helpers/harness.js";

let h: Harness;
const mountPoint = path.join(tmpdir(), `berth-small-fs-${randomUUID().slice(0, 8)}`);

beforeAll(async () => {
  await mkdir(mountPoint, { recursive: true });
  // A 2 MB filesystem for archives (tests run as root, as scripts/test does).
  await execa("mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mountPoint]);
  h = await startHarness({ BERTH_ARCHIVE_DIR: mountPoint });
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  await execa("umount", [mountPoint], { reject: false });
  await rmdir(mountPoint).catch(() => undefined);
  expect(left).toEqual([]);
});

it("records archive_failed, keeps the workspace and serves no partial archive when the disk is full", async () => {
  const t = await h.waitFinished(
    (await h.submit({ command: ["sh", "-c", "head -c 6000000 /dev/urandom > big.bin; echo kept > note.txt"] })).id,
  );
  expect(t).toMatchObject({ status: "failed", exitCode: 0, reason: "archive_failed", archive: null });
  expect(t.message).toMatch(/could not be archived/);

  const res = await h.request("GET", `/v1/tasks/${t.id}/archive`);
  expect(res.statusCode).toBe(409);
  expect(res.json().error.code).toBe("archive_not_ready");
  expect(await readdir(mountPoint)).toEqual([]); // no temp file, no partial archive

  const ws = path.join(h.deps.config.dirs.workspaces, t.workspace);
  expect(await readFile(path.join(ws, "note.txt"), "utf8")).toBe("kept\n");
  const file = await h.request("GET", `/v1/tasks/${t.id}/files/note.txt`);
  expect(file.body).toBe("kept\n");

  // A small task still archives fine on the same filesystem afterwards.
  const small = await h.waitFinished((await h.submit({ command: ["sh", "-c", "echo ok > ok.txt"] })).id);
  expect(small.status).toBe("succeeded");
  expect(small.archive).not.toBeNull();
});
