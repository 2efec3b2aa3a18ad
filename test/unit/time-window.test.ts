// parseSince (src/domain/time-window.ts): the `?since=` of GET /v1/usage and GET /v1/audit.
import { parseSince } from "../../src/domain/time-window.js";
import { BerthError } from "../../src/errors.js";

const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);

describe("parseSince", () => {
  it("takes the fallback when nothing is given", () => {
    expect(parseSince(undefined, NOW, 42)).toBe(42);
    expect(parseSince("", NOW, 42)).toBe(42);
  });

  it("reads a span back from now", () => {
    expect(parseSince("90s", NOW, 0)).toBe(NOW - 90_000);
    expect(parseSince("30m", NOW, 0)).toBe(NOW - 1_800_000);
    expect(parseSince("24h", NOW, 0)).toBe(NOW - 86_400_000);
    expect(parseSince("7d", NOW, 0)).toBe(NOW - 7 * 86_400_000);
    expect(parseSince("0s", NOW, 0)).toBe(NOW);
  });

  it("reads ISO-8601 dates and times", () => {
    expect(parseSince("2026-11-23", NOW, 0)).toBe(Date.UTC(2026, 10, 23));
    expect(parseSince("2026-11-23T10:00:00Z", NOW, 0)).toBe(Date.UTC(2026, 10, 23, 10));
    expect(parseSince("2026-11-23T10:00:00.5+01:00", NOW, 0)).toBe(Date.UTC(2026, 10, 23, 9, 0, 0, 500));
  });

  it("refuses anything else with a 400 naming the field", () => {
    for (const raw of ["yesterday", "7 d", "-1d", "1w", "2026-13-45", "Tue Nov 24 2026", "1732000000000"]) {
      let caught: unknown;
      try {
        parseSince(raw, NOW, 0, "since");
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(BerthError);
      expect((caught as BerthError).code).toBe("invalid_input");
      expect((caught as BerthError).details).toEqual({ field: "since" });
      expect((caught as BerthError).message).toMatch(/^Invalid since: give an ISO-8601 time .* got "/);
    }
  });
});
