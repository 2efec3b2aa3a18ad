// Figures 7 and 8: berth on several hosts' parts, on this one machine.
//   7. archiving into an S3-compatible store (a throwaway Ceph RGW, scripts/s3-rgw) against archiving to local disk:
//      the same workspaces, interleaved; the ~130 MB one of figure 4 and a small one (most tasks' size).
//   8. 40 trivial tasks through an API process with two worker processes (2 slots each) against one (4 slots),
//      archives in the store either way. The engine and the 2 cores are shared, so this shows overhead, not scale.
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CreateBucketCommand, DeleteObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { execa } from "execa";
import { createArchive } from "../src/archive/archive.js";
import type { ArchiveStore } from "../src/archive/archive-store.js";
import { LocalArchiveStore } from "../src/archive/local-store.js";
import { openArchiveStore } from "../src/archive/open-store.js";
import { loadConfig, quietSdkNotices } from "../src/config/config.js";
import type { TaskView } from "../src/contract/types.js";
import { benchName, buildWorkspace } from "./archive.js";
import {
  type BenchContext,
  type FigureResult,
  fmtNum,
  freePort,
  interleave,
  median,
  procCpuMs,
  REDIS_URL,
  row,
  startServe,
  submitTask,
  waitArchived,
} from "./lib.js";

const S3_RGW = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../scripts/s3-rgw");

interface BenchS3 {
  /** BERTH_S3_* and AWS_* settings for berth. */
  readonly env: Record<string, string>;
  readonly bucket: string;
  readonly client: S3Client;
  /** CPU time (ms) the store's daemons (gateway, OSD, monitor) have used so far. */
  cpuMs(): Promise<number>;
}

let s3: Promise<BenchS3> | undefined;

/** One throwaway gateway for the run (figures 7 and 8 share it), stopped by the run's cleanup. */
function benchS3(ctx: BenchContext): Promise<BenchS3> {
  s3 ??= (async () => {
    quietSdkNotices();
    const dir = path.join(ctx.root, "s3-rgw");
    let port = await freePort();
    let out = await execa(S3_RGW, ["start", dir, String(port)], { reject: false });
    if (out.exitCode !== 0) {
      port = await freePort(); // the monitor takes port + 1: try another pair once
      out = await execa(S3_RGW, ["start", dir, String(port)], { reject: false });
    }
    ctx.cleanup.add("the S3-compatible store (scripts/s3-rgw)", async () => void (await execa(S3_RGW, ["stop", dir], { reject: false })));
    if (out.exitCode !== 0) throw new Error(`scripts/s3-rgw start failed: ${out.stderr.slice(-2000)}`);
    const env = Object.fromEntries(
      out.stdout
        .trim()
        .split("\n")
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    const client = new S3Client({
      endpoint: env.BERTH_S3_ENDPOINT,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID as string, secretAccessKey: env.AWS_SECRET_ACCESS_KEY as string },
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
    const bucket = `berth-bench-${ctx.runId}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    ctx.log(`S3-compatible store at ${env.BERTH_S3_ENDPOINT}, bucket ${bucket}`);
    const pids = await Promise.all(
      ["radosgw", "osd", "mon"].map(async (d) => Number((await readFile(path.join(dir, `${d}.pid`), "utf8")).trim())),
    );
    const cpuMs = async () => (await Promise.all(pids.map((pid) => procCpuMs(pid).catch(() => 0)))).reduce((a, b) => a + b, 0);
    return { env, bucket, client, cpuMs };
  })();
  return s3;
}

export async function archiveStoreBench(ctx: BenchContext): Promise<FigureResult> {
  const store = await benchS3(ctx);
  const big = path.join(ctx.root, "hosts-workspace-big");
  const small = path.join(ctx.root, "hosts-workspace-small");
  const out = path.join(ctx.root, "hosts-archives");
  await mkdir(big, { recursive: true });
  await mkdir(path.join(small, "src"), { recursive: true });
  await mkdir(out, { recursive: true });
  ctx.log("figure 7: building the ~130 MB workspace of figure 4, and a small one");
  const bigBytes = await buildWorkspace(big);
  for (let i = 0; i < 20; i++) await writeFile(path.join(small, "src", `f${i}.txt`), randomBytes(2000).toString("base64"));
  await execa("sh", ["-c", `tar cf - -C '${big}' . | wc -c`]); // warm the page cache for both alike
  const config = loadConfig({ ...store.env, BERTH_ARCHIVE_STORE: `s3://${store.bucket}/figure-7`, BERTH_ARCHIVE_DIR: out });
  const s3Store = await openArchiveStore(config);
  ctx.cleanup.add("figure 7's store client", async () => s3Store.close());
  const local = new LocalArchiveStore(out);
  // How long createArchive waited on each store while it wrote (back-pressure), and to publish: big archives only.
  const waits = { s3: [] as number[], local: [] as number[], commitS3: [] as number[], commitLocal: [] as number[] };
  const timedStore = (inner: ArchiveStore, key: "s3" | "local"): ArchiveStore =>
    Object.assign(Object.create(inner) as ArchiveStore, {
      begin: async (w: string, signal: AbortSignal) => {
        const writer = await inner.begin(w, signal);
        let waited = 0;
        return {
          write: async (chunk: Buffer) => {
            const t = performance.now();
            await writer.write(chunk);
            waited += performance.now() - t;
          },
          commit: async (written: { bytes: number; sha256: string }) => {
            const t = performance.now();
            await writer.commit(written);
            if (written.bytes > 1e6) {
              waits[key].push(waited);
              (key === "s3" ? waits.commitS3 : waits.commitLocal).push(performance.now() - t);
            }
          },
          abort: () => writer.abort(),
        };
      },
    });
  const s3Timed = timedStore(s3Store, "s3");
  const localTimed = timedStore(local, "local");
  let n = 0;
  const sizes: number[] = [];
  /** CPU time of the store's daemons and of this process (where createArchive's Node work runs) per big run. */
  const cpu = { storeS3: [] as number[], selfS3: [] as number[], selfLocal: [] as number[] };
  const timed = (ws: string, target: ArchiveStore) => async (): Promise<number> => {
    const name = benchName(n++);
    const [store0, self0] = [await store.cpuMs(), process.cpuUsage()];
    const t0 = performance.now();
    const r = await createArchive({ workspacePath: ws, store: target, name, timeoutMs: 600_000 });
    const elapsed = performance.now() - t0;
    if (ws === big) {
      sizes.push(r.bytes);
      const self = process.cpuUsage(self0);
      (target === localTimed ? cpu.selfLocal : cpu.selfS3).push((self.user + self.system) / 1000);
      if (target !== localTimed) cpu.storeS3.push((await store.cpuMs()) - store0);
    }
    await target.remove([name]); // the store keeps its data in RAM: do not let the runs pile up
    return elapsed;
  };
  const reps = ctx.reps.other;
  const [bigS3, bigLocal] = await interleave(reps, [timed(big, s3Timed), timed(big, localTimed)], {
    warmup: ctx.quick ? 0 : 1,
    signal: ctx.signal,
    log: ctx.log,
    names: ["to the object store", "to local disk"],
  });
  const [smallS3, smallLocal] = await interleave(reps * 5, [timed(small, s3Timed), timed(small, localTimed)], {
    warmup: 1,
    signal: ctx.signal,
    log: ctx.log,
    names: ["small, to the object store", "small, to local disk"],
  });
  const wsMb = fmtNum(bigBytes / 1e6, 0);
  return {
    rows: [
      row(
        `7. archive the ~${wsMb} MB workspace of 4 into an S3-compatible store (Ceph RGW)`,
        "s",
        bigS3 ?? [],
        bigLocal ?? [],
        "the same, to local disk",
      ),
      row("7. same, a small workspace (20 files, 54 KB)", "ms", smallS3 ?? [], smallLocal ?? [], "the same, to local disk"),
    ],
    details: [
      `Figure 7 — ~${wsMb} MB workspace: to the store ${fmtNum(median(bigS3 ?? []))} ms, to local disk ${fmtNum(median(bigLocal ?? []))} ms (archive ${fmtNum(median(sizes) / 1e6, 1)} MB, a multipart upload of 8 MiB parts, 2 in flight, completed once verified, then its sha256 set as metadata by an in-place copy);`,
      `    small workspace: ${fmtNum(median(smallS3 ?? []), 1)} ms vs ${fmtNum(median(smallLocal ?? []), 1)} ms (one PutObject with its metadata, against temp file + fsync + rename + dir fsync).`,
      `    The store runs on the same 2 cores (RGW, an OSD and a monitor, data in RAM), so its own work is in the figure: its daemons used ${fmtNum(median(cpu.storeS3))} ms of CPU per big archive.`,
      `    While writing, createArchive waited ${fmtNum(median(waits.s3))} ms in all for the store to take the bytes (${fmtNum(median(waits.local))} ms for the disk), and ${fmtNum(median(waits.commitS3))} ms to complete the upload and set its metadata (${fmtNum(median(waits.commitLocal))} ms to fsync and rename): the upload keeps pace with the compressor.`,
      `    berth's own process used ${fmtNum(median(cpu.selfS3))} ms of CPU per big archive to the store, ${fmtNum(median(cpu.selfLocal))} ms to local disk (the compressor's CPU is in neither).`,
    ],
  };
}

export async function workersBench(ctx: BenchContext): Promise<FigureResult> {
  const store = await benchS3(ctx);
  const secret = randomUUID() + randomUUID();
  const TASKS = 40;
  /** An API process and `workers` worker processes of `slots` each, over one namespace, archives in the store. */
  const setup = async (name: string, workers: number, slots: number) => {
    const namespace = `berth-bench-${ctx.runId}-${name}`;
    const shared = {
      ...store.env,
      BERTH_REDIS_URL: REDIS_URL,
      BERTH_ARCHIVE_STORE: `s3://${store.bucket}/${name}`,
      BERTH_CLUSTER_SECRET: secret,
      BERTH_TENANT_MAX_ACTIVE: "1000",
    };
    for (let w = 0; w < workers; w++) {
      const port = await freePort();
      await startServe(
        ctx,
        `${name}-worker-${w}`,
        {
          ...shared,
          BERTH_NODE_ID: `${name}-host-${w}`,
          BERTH_CONCURRENCY: String(slots),
          BERTH_ADVERTISE_URL: `http://127.0.0.1:${port}`,
        },
        { role: "worker", namespace, port },
      );
    }
    return startServe(ctx, `${name}-api`, { ...shared, BERTH_NODE_ID: `${name}-api` }, { role: "api", namespace });
  };
  ctx.log(`figure 8: ${TASKS} trivial tasks through an API process, with two worker processes (2 slots each) and with one (4 slots)`);
  const two = await setup("two-workers", 2, 2);
  const one = await setup("one-worker", 1, 4);
  const spread: number[] = [];
  let batch = 0;
  const run = (api: { url: string }, count: boolean) => async (): Promise<number> => {
    const label = `${ctx.runId}-${batch++}`;
    const t0 = performance.now();
    const submitted = await Promise.all(
      Array.from({ length: TASKS }, () => submitTask(api.url, { command: ["true"], labels: { bench: label } })),
    );
    const views: TaskView[] = await Promise.all(submitted.map((s) => waitArchived(api.url, s.id, undefined, 600_000)));
    const elapsed = performance.now() - t0;
    if (count) spread.push(views.filter((v) => v.host?.endsWith("host-0")).length);
    for (const v of views)
      await store.client.send(
        new DeleteObjectCommand({ Bucket: store.bucket, Key: `${count ? "two-workers" : "one-worker"}/${v.workspace}.tar.gz` }),
      );
    return elapsed;
  };
  const [twoMs, oneMs] = await interleave(ctx.reps.other, [run(two, true), run(one, false)], {
    warmup: ctx.quick ? 0 : 1,
    signal: ctx.signal,
    log: ctx.log,
    names: ["two worker processes", "one worker process"],
  });
  return {
    rows: [
      row(
        `8. ${TASKS} \`true\` tasks via an API process: 2 worker processes × 2 slots`,
        "s",
        twoMs ?? [],
        oneMs ?? [],
        "1 worker process × 4 slots",
      ),
    ],
    details: [
      `Figure 8 — two worker processes ${fmtNum(median(twoMs ?? []) / 1000, 2)} s, one ${fmtNum(median(oneMs ?? []) / 1000, 2)} s for ${TASKS} tasks (archives in the object store, an API process apart, the same 4 slots in all);`,
      `    the first worker took ${spread.map((s) => `${s}`).join(", ")} of the ${TASKS} tasks in the two-worker runs. One engine and 2 cores serve both: this is the overhead of more processes, not the scale of more hosts.`,
    ],
  };
}
