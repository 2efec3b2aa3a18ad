// The tenant label of the task series (BERTH_METRICS_TENANT_LABEL): absent by default, present when asked for, and
// never on series that are not per task. Read from the rendered text, whatever order its labels come in.
import { Metrics } from "../../src/metrics/metrics.js";

const END = { status: "failed", reason: "oom_killed", startedAtMs: 1_000, finishedAtMs: 3_500 };

/** The value of the sample `name` whose labels are exactly `labels` (plus host="h1"), or undefined. */
async function sample(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const want = JSON.stringify(Object.entries({ ...labels, host: "h1" }).sort());
  for (const line of (await m.render()).body.split("\n")) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const got = [...(match[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]).sort();
    if (JSON.stringify(got) === want) return Number(match[3]);
  }
  return undefined;
}

async function labelsOf(m: Metrics, name: string): Promise<Record<string, string | number>[]> {
  const metric = m.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  return (await metric.get()).values.map((v) => v.labels as Record<string, string | number>);
}

describe("Metrics", () => {
  it("labels task series with status and host only, by default", async () => {
    const m = new Metrics({ host: "h1", tenantLabel: false });
    m.taskEnded({ tenant: "acme", ...END });
    m.taskEnded({ tenant: "globex", ...END });
    m.taskStarted("acme", 250, 40);
    expect(await labelsOf(m, "berth_tasks_total")).toEqual([{ status: "failed" }]);
    const text = (await m.render()).body;
    expect(await sample(m, "berth_tasks_total", { status: "failed" })).toBe(2);
    expect(await sample(m, "berth_task_failures_total", { reason: "oom_killed" })).toBe(2);
    expect(await sample(m, "berth_task_duration_seconds_sum", { status: "failed" })).toBe(5);
    expect(await sample(m, "berth_queue_wait_seconds_count")).toBe(1);
    expect(text).not.toMatch(/acme|globex/);
  });

  it("adds the tenant to the task series with BERTH_METRICS_TENANT_LABEL", async () => {
    const m = new Metrics({ host: "h1", tenantLabel: true });
    m.taskEnded({ tenant: "acme", ...END });
    m.taskEnded({ tenant: "globex", ...END });
    m.taskEnded({ tenant: "acme", ...END, status: "succeeded", reason: null });
    m.taskStarted("acme", 250, 40);
    m.output({ stdout: 5, stderr: 0, dropped: 0 });
    m.archived(20, 1234);
    expect(await labelsOf(m, "berth_tasks_total")).toEqual(
      expect.arrayContaining([
        { status: "failed", tenant: "acme" },
        { status: "failed", tenant: "globex" },
        { status: "succeeded", tenant: "acme" },
      ]),
    );
    expect(await sample(m, "berth_tasks_total", { status: "failed", tenant: "acme" })).toBe(1);
    expect(await sample(m, "berth_task_failures_total", { reason: "oom_killed", tenant: "globex" })).toBe(1);
    expect(await sample(m, "berth_queue_wait_seconds_count", { tenant: "acme" })).toBe(1);
    // Per-process series keep no tenant: the container start and the log bytes.
    expect(await sample(m, "berth_container_start_seconds_count")).toBe(1);
    expect(await sample(m, "berth_log_bytes_total", { stream: "stdout" })).toBe(5);
    expect(await sample(m, "berth_archive_seconds_count", { outcome: "ok" })).toBe(1);
    expect(await sample(m, "berth_tasks_total", { status: "failed" })).toBeUndefined();
  });

  it("counts an SSE stream once however often its close is reported", async () => {
    const m = new Metrics({ host: "h1", tenantLabel: false });
    const closeA = m.sseOpened("logs");
    const closeB = m.sseOpened("logs");
    closeA();
    closeA();
    expect(await sample(m, "berth_sse_followers", { stream: "logs" })).toBe(1);
    closeB();
    expect(await sample(m, "berth_sse_followers", { stream: "logs" })).toBe(0);
  });
});
