// When the disk limit's watcher walks a workspace: at once when the free space lost since the last walk could have
// taken it past its limit, and periodically the sooner the less room is left.
import { nextWalkInterval, upperBound } from "../../src/runner/disk-watch.js";

const MiB = 1024 * 1024;

describe("upperBound", () => {
  it("counts every byte the filesystem lost since the last walk as the workspace's", () => {
    expect(upperBound({ bytes: 10 * MiB, freeBytes: 1000 * MiB }, 900 * MiB)).toBe(110 * MiB);
  });

  it("never goes below the last walk when space was freed elsewhere", () => {
    expect(upperBound({ bytes: 10 * MiB, freeBytes: 1000 * MiB }, 1200 * MiB)).toBe(10 * MiB);
  });
});

describe("nextWalkInterval", () => {
  it("walks twice before the assumed growth (1 GiB/s) could fill the room left, within 100 ms to 1 s", () => {
    expect(nextWalkInterval({ limitBytes: 64 * MiB, bytes: 0, peakBytesPerSecond: 0 })).toBe(100);
    expect(nextWalkInterval({ limitBytes: 1024 * MiB, bytes: 0, peakBytesPerSecond: 0 })).toBe(500);
    expect(nextWalkInterval({ limitBytes: 100_000 * MiB, bytes: 0, peakBytesPerSecond: 0 })).toBe(1000);
  });

  it("walks sooner once faster growth has been seen, and as the room shrinks", () => {
    const slow = nextWalkInterval({ limitBytes: 4096 * MiB, bytes: 0, peakBytesPerSecond: 0 });
    const fast = nextWalkInterval({ limitBytes: 4096 * MiB, bytes: 0, peakBytesPerSecond: 8 * 1024 * MiB });
    const full = nextWalkInterval({ limitBytes: 4096 * MiB, bytes: 4000 * MiB, peakBytesPerSecond: 0 });
    expect(fast).toBeLessThan(slow);
    expect(full).toBe(100);
  });
});
