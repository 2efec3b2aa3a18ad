import { describeRedisTarget, parseRedisUrl } from "../../src/config/redis-url.js";

const problem = (url: string) => {
  try {
    parseRedisUrl(url);
  } catch (err) {
    return (err as Error).message;
  }
  return "no error";
};

describe("parseRedisUrl", () => {
  it("hands a redis:// or rediss:// URL to ioredis as it is", () => {
    expect(parseRedisUrl("redis://127.0.0.1:6379")).toEqual({ kind: "single", url: "redis://127.0.0.1:6379" });
    expect(parseRedisUrl("rediss://:pw@db.example:6380/2")).toEqual({ kind: "single", url: "rediss://:pw@db.example:6380/2" });
  });

  it("reads sentinels, the master's name and credentials", () => {
    expect(parseRedisUrl("redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-2,[::1]:26380/my-master")).toEqual({
      kind: "sentinel",
      sentinels: [
        { host: "10.0.0.1", port: 26379 },
        { host: "sentinel-2", port: 26379 },
        { host: "::1", port: 26380 },
      ],
      masterName: "my-master",
      password: "s@cret",
      tls: false,
    });
    expect(parseRedisUrl("rediss+sentinel://app:pw@s1:26379/berth")).toMatchObject({ username: "app", password: "pw", tls: true });
    expect(parseRedisUrl("redis+sentinel://s1/berth")).not.toHaveProperty("password");
  });

  it("reads cluster seed nodes, defaulting to port 6379", () => {
    expect(parseRedisUrl("redis+cluster://h1:7000,h2")).toEqual({
      kind: "cluster",
      nodes: [
        { host: "h1", port: 7000 },
        { host: "h2", port: 6379 },
      ],
      tls: false,
    });
    expect(parseRedisUrl("rediss+cluster://:pw@h1:7000/")).toMatchObject({ kind: "cluster", password: "pw", tls: true });
  });

  it("says what is wrong, never the user name or password", () => {
    const cases: [string, RegExp][] = [
      ["http://db:6379", /^must start with redis:\/\//],
      ["redis://db:6379/x", /names database "x"/],
      ["redis+sentinel://s1:26379", /names no master after the hosts; expected redis\+sentinel:\/\//],
      ["redis+sentinel://s1:26379/", /names no master/],
      ["redis+sentinel://s1:26379/a b", /names master "a b"/],
      ["redis+sentinel://s1:26379/m/0", /names master "m\/0"/],
      ["redis+sentinel://user:hunter2@s1:99999/m", /has "s1:99999" where a host\[:port\] belongs/],
      ["redis+sentinel://user:hunter2@s1,,s2/m", /has an empty host/],
      ["redis+sentinel://user:hunter2@/m", /has an empty host/],
      ["redis+cluster://user:hunter2@h1:7000/3", /a Redis Cluster has only database 0/],
      ["redis+cluster://h1:7000?tls=true", /has a query or fragment/],
      ["redis+cluster://h_1:7000", /has "h_1:7000" where a host/],
      ["redis+cluster://user:%zz@h1:7000", /has a password that is not valid percent-encoding/],
      [`redis+cluster://${Array.from({ length: 33 }, (_, i) => `h${i}`).join(",")}`, /lists 33 hosts; at most 32/],
    ];
    for (const [url, expected] of cases) {
      const m = problem(url);
      expect(m).toMatch(expected);
      expect(m).not.toMatch(/hunter2|user|%zz/);
    }
  });

  it("describes a target by its hosts, never its credentials", () => {
    expect(describeRedisTarget(parseRedisUrl("redis://:hunter2@db:6380"))).toBe("Redis at db:6380");
    expect(describeRedisTarget(parseRedisUrl("redis+sentinel://:hunter2@s1,[::1]:26380/berth"))).toBe(
      'Redis master "berth" through the sentinels at s1:26379,[::1]:26380',
    );
    expect(describeRedisTarget(parseRedisUrl("redis+cluster://:hunter2@h1:7000,h2:7001"))).toBe("Redis Cluster at h1:7000,h2:7001");
  });
});
