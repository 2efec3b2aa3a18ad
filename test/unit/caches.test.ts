// Cache names and the volume names of tenants' caches (src/domain/caches.ts): never the same volume for two
// tenants, whatever their names, and names a task may ask for (validate.ts).
import { loadConfig } from "../../src/config/config.js";
import { CACHE_NAME, cacheVolumeName, escapeTenant, MAX_CACHES_PER_TASK } from "../../src/domain/caches.js";
import { validateSubmit } from "../../src/domain/validate.js";
import { BerthError } from "../../src/errors.js";

describe("cacheVolumeName", () => {
  it("reads as berth-cache-<tenant>-<name> for plain names", () => {
    expect(cacheVolumeName("berth", "acme", "pip")).toBe("berth-cache-acme-pip");
    expect(cacheVolumeName("berth-test-1", "team.a", "npm_9")).toBe("berth-test-1-cache-team.a-npm_9");
  });

  it("escapes what could make two tenants' names meet: the separator, the escape itself, upper case, other bytes", () => {
    expect(escapeTenant("a-b")).toBe("a_2db");
    expect(escapeTenant("a_2db")).toBe("a_5f2db");
    expect(escapeTenant("Acme")).toBe("_41cme");
    expect(escapeTenant("é")).toBe("_c3_a9");
    expect(cacheVolumeName("berth", "a-b", "c")).not.toBe(cacheVolumeName("berth", "a", "b-c"));
  });

  it("is one-to-one over tenant and cache names that look alike", () => {
    const tenants = ["a", "a-b", "a-b-c", "a_b", "a_2db", "A", "a.b", "ab", "a-", "-a", "_", "__", "_2d", "x".repeat(64), "X".repeat(64)];
    const caches = ["b", "b-c", "c", "2d", "b_c", "0", "_"].filter((c) => CACHE_NAME.test(c));
    const seen = new Map<string, string>();
    for (const t of tenants)
      for (const c of caches) {
        const v = cacheVolumeName("berth", t, c);
        expect(seen.get(v) ?? `${t}/${c}`).toBe(`${t}/${c}`);
        seen.set(v, `${t}/${c}`);
        // A name Docker accepts for a volume, short enough for a directory name.
        expect(v).toMatch(/^[a-z0-9][a-z0-9_.-]+$/);
        expect(v.length).toBeLessThanOrEqual(200);
      }
    expect(seen.size).toBe(tenants.length * caches.length);
  });

  it("hashes a tenant name whose escaping would be too long, in a form the escaping never makes", () => {
    const long = escapeTenant("X".repeat(64));
    expect(long).toMatch(/^_z[0-9a-f]{40}$/);
    expect(escapeTenant("Y".repeat(64))).not.toBe(long);
  });
});

describe("caches on submit", () => {
  const config = loadConfig({ HOME: "/home/x" });
  const refusal = (caches: unknown) => {
    try {
      validateSubmit({ command: ["true"], caches }, config);
    } catch (err) {
      expect(err).toBeInstanceOf(BerthError);
      return err as BerthError;
    }
    throw new Error(`accepted ${JSON.stringify(caches)}`);
  };

  it("takes up to 8 distinct names of a-z, 0-9, _ and -", () => {
    expect(validateSubmit({ command: ["true"], caches: ["pip", "npm", "go-mod_1"] }, config).spec.caches).toEqual([
      "pip",
      "npm",
      "go-mod_1",
    ]);
    expect(validateSubmit({ command: ["true"], caches: [] }, config).spec).not.toHaveProperty("caches");
    expect(validateSubmit({ command: ["true"] }, config).spec).not.toHaveProperty("caches");
  });

  it.each([
    [["Pip"], "caches.0"],
    [["../x"], "caches.0"],
    [["a b"], "caches.0"],
    [["-pip"], "caches.0"],
    [["pip", ""], "caches.1"],
    [["x".repeat(33)], "caches.0"],
    [[1], "caches.0"],
  ])("refuses %j, naming %s", (caches, field) => {
    const err = refusal(caches);
    expect(err.details).toEqual({ field });
    expect(err.message).toMatch(new RegExp(`^Invalid ${field.replace(".", "\\.")}: `));
  });

  it("refuses a name given twice, more than 8 caches, and a cache list that is not an array", () => {
    expect(refusal(["pip", "pip"]).message).toBe("Invalid caches: names a cache twice.");
    expect(refusal(Array.from({ length: MAX_CACHES_PER_TASK + 1 }, (_, i) => `c${i}`)).message).toBe(
      "Invalid caches: at most 8 caches per task.",
    );
    expect(refusal("pip").details).toEqual({ field: "caches" });
  });
});
