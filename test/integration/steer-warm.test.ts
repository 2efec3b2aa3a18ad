// The same tests as steer.test.ts, with a warm pool: every task that fits a profile starts in a container started
// ahead (runner/warm-pool.ts). What a task sees and how it ends must not tell the two paths apart.
import { useWarmPool, warmStarts } from "../helpers/harness.js";

useWarmPool({ BERTH_WARM_POOL: "2" });
await import("./steer.test.js");

it("started its tasks in warm containers whenever they fit a profile", () => {
  const { warm, missed } = warmStarts();
  expect(warm).toBeGreaterThan(0);
  expect(missed).toBe(0);
});
