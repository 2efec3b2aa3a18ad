// The object store going wrong under berth (a real Ceph RGW from scripts/s3-rgw, killed, paused or misaddressed
// by this test; nothing else on the machine is touched): a clear message at start, archive_failed with the store
// named and nothing half-written when it fails mid-upload, /readyz naming it, and never a hang.
import { randomUUID } from "node:crypto";
import { lstat, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { sweep } from "../../src/cleanup/sweep.js";
import { freePort, startFails } from "../helpers/berth-process.js";
import { startHarness, type Harness } from "../helpers/harness.js";
import { startS3, type S3Store } from "../helpers/s3.js";
import { waitFor } from "../helpers/wait-for.js";

let s3: S3Store;
let root: string;
const harnesses: Harness[] = [];

beforeAll(async () => {
  s3 = await startS3();
  root = await mkdtemp(path.join(tmpdir(), "berth-s3-faults-"));
}, 300_000);
afterAll(async () => {
  // A test that failed half-way may have left the gateway paused.
  await s3?.pauseGateway(false).catch(() => undefined);
  for (const h of harnesses) await h.close();
  await s3?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

async function harness(env: Record<string, string> = {}) {
  const b = await s3.bucket("archives");
  const h = await startHarness({ ...b.env, ...env });
  harnesses.push(h);
  return { h, bucket: b.bucket, keyOf: (ws: string) => `archives/${ws}.tar.gz` };
}

const present = (p: string) =>
  lstat(p).then(
    () => true,
    () => false,
  );

describe("berth refuses to start with an object store it cannot use, in one message naming the setting", () => {
  it.each([
    [
      "no store at the endpoint",
      async () => ({ BERTH_S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` }),
      /^berth: The object store at http:\/\/127\.0\.0\.1:\d+ \(BERTH_S3_ENDPOINT\) does not answer/,
    ],
    [
      "a wrong secret key",
      async () => ({ AWS_SECRET_ACCESS_KEY: "not-the-secret-key" }),
      /^berth: Invalid AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY: .*refused the credentials/,
    ],
    [
      "an unknown access key",
      async () => ({ AWS_ACCESS_KEY_ID: "NOSUCHKEY" }),
      /^berth: Invalid AWS_ACCESS_KEY_ID \/ AWS_SECRET_ACCESS_KEY/,
    ],
    [
      "a bucket that does not exist",
      async () => ({ BERTH_ARCHIVE_STORE: "s3://no-such-bucket/archives" }),
      /^berth: Invalid BERTH_ARCHIVE_STORE: bucket "no-such-bucket" does not exist/,
    ],
    [
      "a store that is not s3://",
      async () => ({ BERTH_ARCHIVE_STORE: "https://example.com/bucket" }),
      /^berth: Invalid BERTH_ARCHIVE_STORE: must be empty/,
    ],
  ])(
    "%s",
    async (_what, bad, message) => {
      const b = await s3.bucket();
      const ns = `berth-test-${randomUUID().slice(0, 8)}`;
      const env = {
        BERTH_REDIS_URL: process.env.BERTH_REDIS_URL ?? "redis://127.0.0.1:6379",
        BERTH_NAMESPACE: ns,
        BERTH_WORKSPACE_DIR: path.join(root, ns, "ws"),
        BERTH_ARCHIVE_DIR: path.join(root, ns, "ar"),
        BERTH_PORT: String(await freePort()),
        LOG_LEVEL: "warn",
        ...b.env,
        ...(await bad()),
      };
      const res = await startFails("serve", env);
      expect(res.timedOut).toBe(false);
      expect(res.exitCode).not.toBe(0);
      const lines = res.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(message);
      expect(res.stdout).not.toContain("listening on");
      for (const secret of [b.env.AWS_SECRET_ACCESS_KEY, "not-the-secret-key"]) expect(`${res.stdout}${res.stderr}`).not.toContain(secret);
    },
    90_000,
  );
});

describe("the store failing under a running berth", () => {
  it("killed mid-upload: the task fails archive_failed naming the store, keeps its workspace, leaves no object; the upload is aborted later", async () => {
    const { h, bucket, keyOf } = await harness();
    // Random data does not compress: a multipart upload of several parts, under way well before the task is archived.
    const t = await h.submit({ command: ["sh", "-c", "head -c 60000000 /dev/urandom > r.bin; echo written"] });
    await waitFor(
      "the archive's multipart upload to start",
      () => s3.uploads(bucket),
      (u) => u.length > 0,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    await s3.killGateway();
    try {
      const done = await h.waitFinished(t.id, 120_000);
      expect(done).toMatchObject({ status: "failed", reason: "archive_failed", exitCode: 0, archive: null });
      expect(done.message).toContain(`The archive store s3://${bucket}/archives at ${s3.endpoint}`);
      // The workspace is kept, whole: nothing removed it, so the operator can still get at it.
      expect(await present(path.join(h.deps.config.dirs.workspaces, done.workspace, "r.bin"))).toBe(true);
      const ready = await h.request("GET", "/readyz");
      expect(ready.statusCode).toBe(503);
      expect(ready.json()).toMatchObject({ archiveStore: "unreachable", redis: "ok" });
      expect(ready.json().error.message).toContain(`the archive store (s3://${bucket}/archives at ${s3.endpoint})`);
      expect((await h.request("GET", `/v1/tasks/${t.id}/archive`)).json().error.code).toBe("archive_not_ready");
    } finally {
      await s3.startGateway();
    }
    await waitFor(
      "/readyz to recover",
      () => h.request("GET", "/readyz"),
      (r) => r.statusCode === 200,
      { timeoutMs: 30_000 },
    );
    expect(await s3.keys(bucket)).toEqual([]);
    // The gateway was gone when the writer tried to abort its upload: cleanup does it once the upload is stale.
    const left = (await s3.uploads(bucket)).length;
    const later = Date.now() + h.deps.config.worker.archiveTimeoutSeconds * 1000 + 11 * 60_000;
    expect((await sweep(h.deps, h.services, { now: later, dryRun: false })).uploadsAborted).toBe(left);
    expect(await s3.uploads(bucket)).toEqual([]);
    expect(await s3.keys(bucket, keyOf(t.workspace))).toEqual([]);
  }, 300_000);

  it("paused (it takes connections and never answers): the archive fails at its timeout, /readyz says so, nothing hangs", async () => {
    const { h, bucket } = await harness({ BERTH_ARCHIVE_TIMEOUT_SECONDS: "8" });
    await s3.pauseGateway(true);
    try {
      const ready = await h.request("GET", "/readyz");
      expect(ready.statusCode).toBe(503);
      expect(ready.json().archiveStore).toBe("unreachable");
      const t = await h.submit({ command: ["sh", "-c", "echo small > out.txt"] });
      const done = await h.waitFinished(t.id, 120_000);
      expect(done).toMatchObject({ status: "failed", reason: "archive_failed", archive: null });
      expect(done.message).toMatch(/longer than 8000 ms/);
      expect(await present(path.join(h.deps.config.dirs.workspaces, done.workspace, "out.txt"))).toBe(true);
    } finally {
      await s3.pauseGateway(false);
    }
    await waitFor(
      "/readyz to recover",
      () => h.request("GET", "/readyz"),
      (r) => r.statusCode === 200,
      { timeoutMs: 30_000 },
    );
    // The paused gateway still held the upload it had been sent, and may store it once it runs again: the writer
    // deletes it as soon as the store answers, so no object outlives the failed archive.
    await waitFor(
      "no object to be left",
      () => s3.keys(bucket),
      (k) => k.length === 0,
      { timeoutMs: 60_000 },
    );
    // And once it answers again, archives are made as before.
    const after = await h.waitFinished((await h.submit({ command: ["sh", "-c", "echo again > out.txt"] })).id, 60_000);
    expect(after.status).toBe("succeeded");
    expect(after.archive).not.toBeNull();
  }, 300_000);
});
