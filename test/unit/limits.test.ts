// Limits a client cannot lift: every limit is checked at submit against what the engine accepts, and the container
// spec never hands the engine a value it reads as "unlimited" (NanoCpus, Memory or PidsLimit 0).
import { loadConfig } from "../../src/config/config.js";
import { validateSubmit } from "../../src/domain/validate.js";
import { engineLimits } from "../../src/runner/container-spec.js";

const config = loadConfig({ BERTH_MAX_DISK_MB: "2048", BERTH_DEFAULT_DISK_MB: "512" });

const refusal = (limits: Record<string, unknown>) => {
  try {
    validateSubmit({ command: ["true"], limits }, config);
  } catch (err) {
    return err as Error & { code: string; details: { field?: string } };
  }
  throw new Error(`limits ${JSON.stringify(limits)} were accepted`);
};

describe("limits at submit", () => {
  it.each([1e-12, 0.001, 0.0099, 0.00999999, 0, -1])("refuses cpus %p, naming the field and the engine's minimum", (cpus) => {
    const err = refusal({ cpus });
    expect(err.code).toBe("invalid_input");
    expect(err.details.field).toBe("limits.cpus");
    expect(err.message).toMatch(/^Invalid limits\.cpus: must be at least 0\.01/);
  });

  it("accepts the engine's smallest CPU limit, 0.01", () => {
    expect(validateSubmit({ command: ["true"], limits: { cpus: 0.01 } }, config).spec.limits.cpus).toBe(0.01);
  });

  it.each([
    [{ memoryMb: 8 }, "limits.memoryMb", /at least 16/],
    [{ pids: 0 }, "limits.pids", /at least 8/],
    [{ diskMb: 0 }, "limits.diskMb", /at least 1/],
    [{ diskMb: 1.5 }, "limits.diskMb", /whole number/],
    [{ diskMb: 4096 }, "limits.diskMb", /at most 2048 \(BERTH_MAX_DISK_MB\), got 4096/],
    [{ cpus: 3 }, "limits.cpus", /at most 2 \(BERTH_MAX_CPUS\)/],
  ])("refuses %p naming %s", (limits, field, message) => {
    const err = refusal(limits);
    expect(err.details.field).toBe(field);
    expect(err.message).toMatch(message);
  });

  it("fills in the configured defaults, disk included", () => {
    expect(validateSubmit({ command: ["true"] }, config).spec.limits).toEqual({ memoryMb: 512, cpus: 1, pids: 256, diskMb: 512 });
  });
});

describe("engineLimits", () => {
  it("converts to engine units", () => {
    expect(engineLimits({ memoryMb: 256, cpus: 1.5, pids: 64, diskMb: 10 })).toEqual({
      memoryBytes: 256 * 1024 * 1024,
      nanoCpus: 1_500_000_000,
      pids: 64,
    });
  });

  it("raises a value the engine would read as unlimited to the smallest real limit", () => {
    // A record queued before the submit rules existed: 1e-12 CPUs rounds to NanoCpus 0, which is no limit at all.
    const l = engineLimits({ memoryMb: 0, cpus: 1e-12, pids: 0, diskMb: 10 });
    expect(l).toEqual({ memoryBytes: 6 * 1024 * 1024, nanoCpus: 10_000_000, pids: 2 });
    const nan = engineLimits({ memoryMb: Number.NaN, cpus: Number.NaN, pids: -1, diskMb: 10 });
    expect(nan.nanoCpus).toBe(10_000_000);
    expect(nan.memoryBytes).toBe(6 * 1024 * 1024);
    expect(nan.pids).toBe(2);
  });
});

describe("limit settings", () => {
  const message = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (err) {
      return (err as Error).message;
    }
    return "no error";
  };

  it("refuses CPU defaults and maxima below the engine's minimum", () => {
    expect(message({ BERTH_DEFAULT_CPUS: "1e-12" })).toMatch(/^Invalid BERTH_DEFAULT_CPUS: must be a number of CPUs from 0\.01/);
    expect(message({ BERTH_MAX_CPUS: "0.001" })).toMatch(/^Invalid BERTH_MAX_CPUS/);
  });

  it("refuses a default disk limit above the maximum", () => {
    expect(message({ BERTH_DEFAULT_DISK_MB: "9000", BERTH_MAX_DISK_MB: "8192" })).toMatch(
      /^Invalid BERTH_DEFAULT_DISK_MB: must not exceed BERTH_MAX_DISK_MB \(8192\)/,
    );
    expect(message({ BERTH_MAX_DISK_MB: "0" })).toMatch(/^Invalid BERTH_MAX_DISK_MB: must be a whole number/);
  });
});
