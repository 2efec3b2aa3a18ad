// The object-store backend (archive/s3-store.ts) against a real S3-compatible server: Ceph's RADOS Gateway started
// by scripts/s3-rgw. What goes up, how it is read back, and that a failure at any point leaves no object and no
// multipart upload behind.
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { buffer } from "node:stream/consumers";
import { execa } from "execa";
import { createArchive } from "../../src/archive/archive.js";
import type { ArchiveStore } from "../../src/archive/archive-store.js";
import { openArchiveStore } from "../../src/archive/open-store.js";
import { PART_BYTES } from "../../src/archive/s3-writer.js";
import { loadConfig } from "../../src/config/config.js";
import { TaskFailure } from "../../src/errors.js";
import { startS3, type S3Store } from "../helpers/s3.js";
import { waitFor } from "../helpers/wait-for.js";

let s3: S3Store;
let root: string;
let n = 0;

beforeAll(async () => {
  s3 = await startS3();
  root = await mkdtemp(path.join(tmpdir(), "berth-s3-store-"));
}, 300_000);
afterAll(async () => {
  await s3?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

const name = () => `task-1700000000000-s3storetest${String(++n).padStart(4, "0")}`;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A store on a fresh bucket, as berth opens it from its configuration. */
async function freshStore(prefix = "archives") {
  const b = await s3.bucket(prefix);
  const config = loadConfig({ ...b.env, BERTH_WORKSPACE_DIR: path.join(root, "ws"), BERTH_ARCHIVE_DIR: path.join(root, `ar-${++n}`) });
  fs.mkdirSync(config.dirs.archives, { recursive: true });
  const store = await openArchiveStore(config);
  return { ...b, store, config, keyOf: (w: string) => `${prefix}/${w}.tar.gz` };
}

function workspace(files: Record<string, string | Buffer>): string {
  const ws = path.join(root, `ws-${++n}`);
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(ws, rel)), { recursive: true });
    fs.writeFileSync(path.join(ws, rel), content);
  }
  fs.mkdirSync(ws, { recursive: true });
  return ws;
}

async function readAll(store: ArchiveStore, w: string, range?: { start: number; end: number }): Promise<Buffer> {
  const got = await store.read(w, range);
  if (!got) throw new Error(`no archive ${w}`);
  return buffer(got.stream);
}

const rejection = async (p: Promise<unknown>): Promise<TaskFailure> => {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TaskFailure);
  return err as TaskFailure;
};

describe("archives in an S3-compatible store", () => {
  it.each([
    ["a small archive (one PutObject)", 1000],
    ["a large archive (multipart upload)", PART_BYTES * 2 + 12345],
  ])(
    "stores %s complete, with its sha256 as metadata, and reads it back whole and by range",
    async (_what, size) => {
      const { store, bucket, keyOf } = await freshStore();
      const w = name();
      const random = randomBytes(size);
      const res = await createArchive({
        workspacePath: workspace({ "out.txt": "hello\n", "data/r.bin": random }),
        store,
        name: w,
        timeoutMs: 120_000,
      });
      expect(await s3.keys(bucket)).toEqual([keyOf(w)]);
      expect(await s3.uploads(bucket)).toEqual([]);
      expect(await s3.metadata(bucket, keyOf(w))).toEqual({ sha256: res.sha256 });

      const whole = await readAll(store, w);
      expect(whole.length).toBe(res.bytes);
      expect(sha(whole)).toBe(res.sha256);
      const got = await store.read(w, { start: 10, end: 99 });
      expect(got?.size).toBe(res.bytes);
      expect((await buffer(got?.stream as NodeJS.ReadableStream)).equals(whole.subarray(10, 100))).toBe(true);

      // GNU tar reads it as the workspace it came from.
      const file = path.join(root, `${w}.tar.gz`);
      fs.writeFileSync(file, whole);
      const x = path.join(root, `x-${n}`);
      fs.mkdirSync(x);
      await execa("tar", ["-xzf", file, "-C", x]);
      expect(fs.readFileSync(path.join(x, "data/r.bin")).equals(random)).toBe(true);
      expect(store.locate(w)).toBe(`s3://${bucket}/${keyOf(w)}`);
      store.close();
    },
    120_000,
  );

  it("restores through a private local copy, removed afterwards, and answers null for a missing archive", async () => {
    const { store, config } = await freshStore("");
    const w = name();
    const res = await createArchive({ workspacePath: workspace({ "a.txt": "a" }), store, name: w, timeoutMs: 60_000 });
    const copy = await store.localCopy(w, AbortSignal.timeout(30_000));
    expect(copy?.path.startsWith(`${config.dirs.archives}/.${w}.tar.gz.tmp-`)).toBe(true);
    expect(sha(fs.readFileSync(copy?.path as string))).toBe(res.sha256);
    expect(fs.statSync(copy?.path as string).mode & 0o777).toBe(0o600);
    await copy?.dispose();
    expect(fs.readdirSync(config.dirs.archives)).toEqual([]);
    expect(await store.read(name())).toBeNull();
    expect(await store.localCopy(name(), AbortSignal.timeout(30_000))).toBeNull();
    store.close();
  });

  it("removes archives in one request, a missing one counting as removed", async () => {
    const { store, bucket } = await freshStore();
    const ws = [name(), name(), name()];
    for (const w of ws.slice(0, 2)) await createArchive({ workspacePath: workspace({ "a.txt": w }), store, name: w, timeoutMs: 60_000 });
    expect(await s3.keys(bucket)).toHaveLength(2);
    expect((await store.remove(ws)).size).toBe(0);
    expect(await s3.keys(bucket)).toEqual([]);
    store.close();
  });

  it("leaves no object and no upload when the archive is canceled or times out mid-upload", async () => {
    const { store, bucket } = await freshStore();
    // Random data does not compress: the upload is well under way (several parts) before the packer is done.
    const ws = workspace({ "r.bin": randomBytes(PART_BYTES * 6) });
    const ac = new AbortController();
    const w = name();
    const canceled = createArchive({ workspacePath: ws, store, name: w, timeoutMs: 120_000, signal: ac.signal });
    await waitUploadStarted(bucket);
    ac.abort();
    expect((await rejection(canceled)).reason).toBe("canceled");
    expect(await s3.keys(bucket)).toEqual([]);
    expect(await s3.uploads(bucket)).toEqual([]);

    const timedOut = await rejection(createArchive({ workspacePath: ws, store, name: name(), timeoutMs: 300 }));
    expect(timedOut.reason).toBe("archive_failed");
    expect(timedOut.message).toMatch(/longer than 300 ms/);
    expect(await s3.keys(bucket)).toEqual([]);
    expect(await s3.uploads(bucket)).toEqual([]);
    store.close();
  }, 120_000);

  it("throws away what a writer wrote: no object, no parts", async () => {
    const { store, bucket } = await freshStore();
    const writer = await store.begin(name(), new AbortController().signal);
    for (let i = 0; i < 3; i++) await writer.write(randomBytes(PART_BYTES));
    await waitUploadStarted(bucket);
    await writer.abort();
    expect(await s3.keys(bucket)).toEqual([]);
    expect(await s3.uploads(bucket)).toEqual([]);
    store.close();
  });

  it("fails the archive when the bucket's quota is exceeded mid-upload, leaving nothing", async () => {
    const { store, bucket } = await freshStore();
    await s3.radosgwAdmin("quota", "set", "--quota-scope=bucket", `--bucket=${bucket}`, `--max-size=${PART_BYTES * 2}`);
    await s3.radosgwAdmin("quota", "enable", "--quota-scope=bucket", `--bucket=${bucket}`);
    const err = await rejection(
      createArchive({ workspacePath: workspace({ "r.bin": randomBytes(PART_BYTES * 4) }), store, name: name(), timeoutMs: 120_000 }),
    );
    expect(err.reason).toBe("archive_failed");
    expect(err.message).toMatch(new RegExp(`archive store s3://${bucket}/archives at ${s3.endpoint}.*QuotaExceeded`));
    expect(await s3.keys(bucket)).toEqual([]);
    expect(await s3.uploads(bucket)).toEqual([]);
    store.close();
  }, 120_000);
});

/** Waits until a multipart upload shows in the bucket. */
const waitUploadStarted = (bucket: string) =>
  waitFor(
    "a multipart upload to start",
    () => s3.uploads(bucket),
    (u) => u.length > 0,
    { timeoutMs: 30_000, intervalMs: 20 },
  );
