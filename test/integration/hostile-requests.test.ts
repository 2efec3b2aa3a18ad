// Hostile requests: bursts are rate limited per key without slowing other tenants; keys and task env never
// reach the logs.
import { PassThrough } from "node:stream";
import { startHarness, type Harness } from "../helpers/harness.js";

const A = { authorization: "Bearer tenant-a-secret-key-0001" };
const B = { authorization: "Bearer tenant-b-secret-key-0002" };
let h: Harness;
let logged = "";

beforeAll(async () => {
  const stream = new PassThrough();
  stream.on("data", (d: Buffer) => {
    logged += d.toString();
  });
  h = await startHarness(
    { BERTH_API_KEYS: "a:tenant-a-secret-key-0001,b:tenant-b-secret-key-0002", BERTH_RATE_LIMIT_PER_MINUTE: "30" },
    { logStream: stream },
  );
});

afterAll(async () => {
  const left = h ? await h.leftoverContainers() : [];
  await h?.close();
  expect(left).toEqual([]);
});

it("limits a burst from one key with 429 and Retry-After while another key is unaffected", async () => {
  const burst = await Promise.all(Array.from({ length: 40 }, () => h.request("GET", "/v1/tasks", undefined, A)));
  const limited = burst.filter((r) => r.statusCode === 429);
  expect(burst.filter((r) => r.statusCode === 200)).toHaveLength(30);
  expect(limited).toHaveLength(10);
  expect(limited[0]?.json().error.code).toBe("rate_limited");
  expect(Number(limited[0]?.headers.get("retry-after"))).toBeGreaterThan(0);
  expect((await h.request("GET", "/v1/tasks", undefined, B)).statusCode).toBe(200);
  expect((await h.request("GET", "/healthz")).statusCode).toBe(200);
});

it("never logs API keys or a task's env, even at debug level", async () => {
  const t = await h.submit({ command: ["sh", "-c", "echo ok"], env: { DB_PASSWORD: "hunter2-very-secret" } }, B);
  await h.waitFinished(t.id, 60_000, B);
  await h.request("GET", "/v1/tasks", undefined, { authorization: "Bearer wrong-key-should-not-be-logged" });
  expect(logged).toContain(t.id); // the logs were captured
  for (const secret of ["tenant-a-secret-key-0001", "tenant-b-secret-key-0002", "wrong-key-should-not-be-logged", "hunter2-very-secret"]) {
    expect(logged).not.toContain(secret);
  }
});
