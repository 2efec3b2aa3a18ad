// Prometheus itself (Debian's binary, unpacked by scripts/test into BERTH_STATE_DIR) scraping berth with a stock
// scrape configuration; tests ask it questions in PromQL through its HTTP API, as a dashboard would.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa, type ResultPromise } from "execa";
import { freePort } from "./server-process.js";
import { waitFor } from "./wait-for.js";

export interface ScrapeJob {
  readonly name: string;
  /** host:port */
  readonly target: string;
  readonly token?: string;
}

export interface Prometheus {
  readonly url: string;
  /** The value of an instant query that yields one sample (null when it yields none). */
  query(expr: string): Promise<number | null>;
  /** Waits until the query yields `expected`, through as many scrapes as it takes. */
  until(expr: string, expected: number | null, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const prometheusBinary = (): string => {
  const bin = process.env.BERTH_TEST_PROMETHEUS;
  if (!bin) throw new Error("BERTH_TEST_PROMETHEUS is not set: run the tests through ./scripts/test, which unpacks Prometheus");
  return bin;
};

/** `promtool check metrics`: Prometheus's own lint of an exposition (names, units, suffixes). */
export async function promtoolCheck(text: string): Promise<{ ok: boolean; output: string }> {
  const res = await execa(path.join(path.dirname(prometheusBinary()), "promtool"), ["check", "metrics"], {
    input: text,
    reject: false,
    all: true,
  });
  return { ok: res.exitCode === 0, output: res.all ?? "" };
}

export async function startPrometheus(jobs: readonly ScrapeJob[]): Promise<Prometheus> {
  const dir = await mkdtemp(path.join(tmpdir(), "berth-prometheus-"));
  // The scrape configuration an operator would write: nothing berth-specific beyond the target and the token.
  const config = [
    "global:",
    "  scrape_interval: 1s",
    "  scrape_timeout: 1s",
    "scrape_configs:",
    ...jobs.flatMap((j) => [
      `  - job_name: ${j.name}`,
      ...(j.token ? ["    authorization:", `      credentials: ${j.token}`] : []),
      "    static_configs:",
      `      - targets: ["${j.target}"]`,
    ]),
  ].join("\n");
  await writeFile(path.join(dir, "prometheus.yml"), `${config}\n`);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc: ResultPromise = execa(
    prometheusBinary(),
    [
      `--config.file=${path.join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { reject: false, all: true },
  );
  let out = "";
  proc.all?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const close = async () => {
    proc.kill("SIGTERM");
    await proc;
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      "Prometheus to be ready",
      () =>
        fetch(`${url}/-/ready`).then(
          (r) => r.status,
          () => (proc.exitCode !== null ? -1 : 0),
        ),
      (s) => s === 200 || s === -1,
      { timeoutMs: 30_000 },
    );
    if (proc.exitCode !== null) throw new Error(`prometheus exited: ${out}`);
  } catch (err) {
    await close();
    throw err;
  }
  const query = async (expr: string) => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: { value: [number, string] }[] } };
    if (body.status !== "success") throw new Error(`query ${expr} failed: ${body.error}`);
    const result = body.data?.result ?? [];
    if (result.length > 1) throw new Error(`query ${expr} yields ${result.length} samples; aggregate it`);
    return result[0] ? Number(result[0].value[1]) : null;
  };
  return {
    url,
    query,
    async until(expr, expected, timeoutMs = 30_000) {
      await waitFor(
        `Prometheus to see ${expr} == ${expected}`,
        () => query(expr),
        (v) => v === expected,
        { timeoutMs, intervalMs: 250 },
      );
    },
    close,
  };
}
