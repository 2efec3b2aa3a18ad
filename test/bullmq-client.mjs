// A service that already speaks BullMQ, written against BullMQ's own API only (nothing of berth's is imported):
// it adds a job to berth's `submit` queue and waits for it as BullMQ users do. Prints one JSON line.
//   node test/bullmq-client.mjs run JOB_ID 'DATA_JSON' ['OPTS_JSON']   add, then job.waitUntilFinished(queueEvents)
//   node test/bullmq-client.mjs state JOB_ID                         the job's state and progress
// Environment: REDIS_URL, and BULL_PREFIX (<BERTH_NAMESPACE>:bull).
import { Job, Queue, QueueEvents } from "bullmq";

const redis = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const connection = { host: redis.hostname, port: Number(redis.port || 6379) };
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
}
