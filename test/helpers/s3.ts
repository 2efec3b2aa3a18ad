// A real S3-compatible store for a test file: scripts/s3-rgw starts a throwaway Ceph RADOS Gateway (one monitor, one
// in-memory OSD) on free ports, all state in a temp directory. One per test file, stopped in afterAll; a watchdog
// process stops it too if this test process dies first, so a failed or interrupted run leaves no daemons behind.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { CreateBucketCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { execa } from "execa";
import { waitFor } from "./wait-for.js";

const SCRIPT = path.resolve("scripts/s3-rgw");

export interface S3Store {
  /** BERTH_S3_ENDPOINT, BERTH_S3_REGION, BERTH_S3_FORCE_PATH_STYLE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY. */
  readonly env: Record<string, string>;
  readonly endpoint: string;
  readonly dir: string;
  /** A client for the test's own checks. */
  readonly client: S3Client;
  /** Creates a fresh bucket and returns berth's settings for `s3://<bucket>/<prefix>`. */
  bucket(prefix?: string): Promise<{ bucket: string; prefix: string; env: Record<string, string> }>;
  /** Keys under a prefix of a bucket. */
  keys(bucket: string, prefix?: string): Promise<string[]>;
  /** Multipart uploads not completed nor aborted under a prefix of a bucket. */
  uploads(bucket: string, prefix?: string): Promise<string[]>;
  /** The object's user metadata, or null when there is no such object. */
  metadata(bucket: string, key: string): Promise<Record<string, string> | null>;
  /** SIGKILLs the gateway (the cluster behind it stays). */
  killGateway(): Promise<void>;
  /** Starts the gateway again on the same port after killGateway. */
  startGateway(): Promise<void>;
  /** SIGSTOP / SIGCONT of the gateway: it accepts connections but never answers. */
  pauseGateway(paused: boolean): Promise<void>;
  radosgwAdmin(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A port p with p + 1 free too (the gateway and the monitor), in a range the OSD does not use. */
async function freePair(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = 20_000 + 2 * Math.floor(Math.random() * 10_000);
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error("no two free ports for the S3 gateway");
}

export async function startS3(): Promise<S3Store> {
  const dir = await mkdtemp(path.join(tmpdir(), "berth-s3-"));
  let port = 0;
  let out = "";
  for (let attempt = 1; ; attempt++) {
    port = await freePair();
    const res = await execa(SCRIPT, ["start", path.join(dir, "rgw"), String(port)], { reject: false, all: true, timeout: 300_000 });
    if (res.exitCode === 0) {
      out = res.stdout;
      break;
    }
    if (attempt >= 3) throw new Error(`scripts/s3-rgw start failed: ${res.all}`);
  }
  const rgwDir = path.join(dir, "rgw");
  // The watchdog: stops the store once this process is gone, however it ended.
  const watchdog = spawn(
    "sh",
    [
      "-c",
      `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; "$0" stop "$1"; rm -rf --one-file-system "$2"`,
      SCRIPT,
      rgwDir,
      dir,
    ],
    { detached: true, stdio: "ignore" },
  );
  watchdog.unref();
  const env = Object.fromEntries(
    out
      .trim()
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  ) as Record<string, string>;
  const endpoint = env.BERTH_S3_ENDPOINT as string;
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID as string, secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  const conf = ["--conf", path.join(rgwDir, "ceph.conf")];
  const gatewayPid = async () => Number((await readFile(path.join(rgwDir, "radosgw.pid"), "utf8")).trim());
  const answers = () =>
    fetch(endpoint, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
  let stopped = false;
  const store: S3Store = {
    env,
    endpoint,
    dir,
    client,
    async bucket(prefix = "archives") {
      const bucket = `berth-test-${randomBytes(5).toString("hex")}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return {
        bucket,
        prefix,
        env: { ...env, BERTH_ARCHIVE_STORE: `s3://${bucket}${prefix ? `/${prefix}` : ""}` },
      };
    },
    async keys(bucket, prefix = "") {
      const res = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
      return (res.Contents ?? []).map((o) => o.Key as string);
    },
    async uploads(bucket, prefix = "") {
      const res = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
      return (res.Uploads ?? []).map((u) => u.Key as string);
    },
    async metadata(bucket, key) {
      try {
        return (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).Metadata ?? {};
      } catch (err) {
        if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return null;
        throw err;
      }
    },
    async killGateway() {
      const pid = await gatewayPid();
      process.kill(pid, "SIGKILL");
      await waitFor(
        "the gateway to be gone",
        async () => execa("kill", ["-0", String(pid)], { reject: false }).then((r) => r.exitCode),
        (code) => code !== 0,
      );
    },
    async startGateway() {
      const log = path.join(rgwDir, "log", "rgw.out");
      // detached: a session of its own, as scripts/s3-rgw starts it (and its pid is the gateway's).
      const child = spawn("radosgw", [...conf, "-f", "-n", "client.rgw.berth"], { detached: true, stdio: "ignore" });
      child.unref();
      await writeFile(path.join(rgwDir, "radosgw.pid"), String(child.pid));
      await waitFor(`the gateway to answer again (log: ${log})`, answers, Boolean, { timeoutMs: 60_000, intervalMs: 200 });
    },
    async pauseGateway(paused) {
      process.kill(await gatewayPid(), paused ? "SIGSTOP" : "SIGCONT");
    },
    async radosgwAdmin(...args) {
      return (await execa("radosgw-admin", [...conf, "-n", "client.rgw.berth", ...args], { timeout: 60_000 })).stdout;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      client.destroy();
      await execa(SCRIPT, ["stop", rgwDir], { reject: false });
      await execa("rm", ["-rf", "--one-file-system", dir], { reject: false });
      try {
        process.kill(watchdog.pid as number, "SIGTERM");
      } catch {
        // already gone
      }
    },
  };
  return store;
}
