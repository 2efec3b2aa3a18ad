// A service that already speaks BullMQ, written against BullMQ's own API only (nothing of berth's is imported):
// it adds a job to berth's `submit` queue and waits for it as BullMQ users do. Prints one JSON line.
//   node test/bullmq-client.mjs run JOB_ID 'DATA_JSON' ['OPTS_JSON']   add, then job.waitUntilFinished(queueEvents)
//   node test/bullmq-client.mjs state JOB_ID                         the job's state and progress
// Environment: REDIS_URL (redis://… or, for a Redis Cluster, redis+cluster://[:password@]host:port,…), and
// BULL_PREFIX (<BERTH_NAMESPACE>:bull; {<BERTH_NAMESPACE>}:bull on a cluster, as the README says).
import { Job, Queue, QueueEvents } from "bullmq";
import { Cluster } from "ioredis"; // BullMQ's own Redis client: how a BullMQ user reaches a cluster

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const clustered = /^redis\+cluster:\/\/(?:([^:@]*):([^@]*)@)?(.+)$/.exec(url);
const connection = clustered
  ? new Cluster(
      clustered[3].split(",").map((node) => ({ host: node.split(":")[0], port: Number(node.split(":")[1] || 6379) })),
      {
        redisOptions: {
          username: clustered[1] ? decodeURIComponent(clustered[1]) : undefined,
          password: clustered[2] ? decodeURIComponent(clustered[2]) : undefined,
          maxRetriesPerRequest: null,
        },
      },
    )
  : (() => {
      const u = new URL(url);
      return { host: u.hostname, port: Number(u.port || 6379), password: u.password ? decodeURIComponent(u.password) : undefined };
    })();
const prefix = process.env.BULL_PREFIX ?? "berth:bull";
const [op, jobId, data, opts] = process.argv.slice(2);
const queue = new Queue("submit", { connection, prefix });

try {
  if (op === "run") {
    // From the stream's start: QueueEvents otherwise reads from "$" once its connection is up, and a job refused
    // within milliseconds of being added can end before that first read. (A service makes its QueueEvents once, at
    // start, long before it adds jobs.)
    const events = new QueueEvents("submit", { connection, prefix, lastEventId: "0-0" });
    await events.waitUntilReady();
    let completedEvent = null;
    events.on("completed", (e) => {
      if (e.jobId === jobId) completedEvent = e.returnvalue;
    });
    const job = await queue.add("task", JSON.parse(data), { jobId, ...JSON.parse(opts ?? "{}") });
    try {
      const value = await job.waitUntilFinished(events, 120_000);
      // QueueEvents delivers the same event to every listener; wait for ours to have seen it too.
      for (let i = 0; i < 50 && completedEvent === null; i++) await new Promise((r) => setTimeout(r, 20));
      console.log(JSON.stringify({ ok: true, value, event: completedEvent, state: await job.getState() }));
    } catch (err) {
      const failed = await Job.fromId(queue, jobId);
      console.log(JSON.stringify({ ok: false, error: err.message, state: await failed.getState(), attemptsMade: failed.attemptsMade }));
    }
    await events.close();
  } else if (op === "state") {
    const job = await Job.fromId(queue, jobId);
    console.log(JSON.stringify({ state: job ? await job.getState() : null, progress: job?.progress ?? null }));
  } else {
    throw new Error(`unknown operation ${op}`);
  }
} finally {
  await queue.close();
  if (connection instanceof Cluster) await connection.quit(); // a connection BullMQ was given is not BullMQ's to close
}
