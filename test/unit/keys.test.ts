import { createKeys } from "../../src/store/keys.js";

/** Redis Cluster's hash slot of a key: CRC16 (XMODEM) of the key, or of its first non-empty `{…}`, modulo 16384. */
function slot(key: string): number {
  const open = key.indexOf("{");
  const close = open === -1 ? -1 : key.indexOf("}", open + 1);
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key;
  let crc = 0;
  for (const byte of Buffer.from(hashed)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

describe("key layout", () => {
  it("computes slots as Redis does", () => {
    // Values from CLUSTER KEYSLOT.
    expect(slot("foo")).toBe(12182);
    expect(slot("somekey")).toBe(11058);
    expect(slot("{foo}:anything")).toBe(12182);
  });

  it("puts every key a script or MULTI touches together in one slot", () => {
    const k = createKeys("berth");
    const together = [
      k.task("t1"),
      k.task("t2"),
      k.spec("t1"),
      k.cleanupLock("t1"),
      k.tenantIndex("acme"),
      k.tenantActive("acme"),
      k.tenantIndex("globex"),
      k.tenantQueued("acme"),
      k.tenantQueued("globex"),
      k.idempotency("acme", "abc"),
      k.expiry,
      k.workerHeartbeat("host-1-2-ab"),
      k.nodeAddress("host-1"),
      k.tenantStored("acme"),
      k.tenantCpu("acme"),
      k.tenantCaches("acme"),
      k.cacheLock("host-1", "berth-cache-acme-deps"),
      k.auditStream("acme"),
      k.auditStream(null),
      k.auditTenants,
      `${createKeys("berth", { cluster: true }).bullPrefix}:tasks:wait`,
    ];
    expect(new Set(together.map(slot)).size).toBe(1);
  });

  it("gives each task's log stream a slot of its own, so large streams spread over the cluster", () => {
    const k = createKeys("berth");
    const slots = new Set(["a1", "b2", "c3", "d4", "e5"].map((id) => slot(k.logs(id))));
    expect(slots.size).toBeGreaterThan(1);
    expect(k.logs("a1")).toBe("berth:logs:{a1}");
  });

  it("keeps BullMQ's documented prefix on one Redis and tags it on a cluster", () => {
    expect(createKeys("berth").bullPrefix).toBe("berth:bull");
    expect(createKeys("berth", { cluster: true }).bullPrefix).toBe("{berth}:bull");
  });

  it("has SCAN patterns matching every key of its namespace and none of another", () => {
    const k = createKeys("ns1");
    const keys = [
      k.task("x"),
      k.logs("x"),
      k.expiry,
      k.tenantQueued("t"),
      k.nodeAddress("h"),
      k.auditStream(null),
      k.bullPrefix,
      createKeys("ns1", { cluster: true }).bullPrefix,
    ];
    const match = (pattern: string, key: string) => new RegExp(`^${pattern.replace(/[{}]/g, "\\$&").replace("*", ".*")}$`).test(key);
    for (const key of keys) expect(k.patterns.some((p) => match(p, `${key}:x`))).toBe(true);
    const other = createKeys("ns10");
    for (const key of [other.task("x"), other.logs("x"), other.expiry]) expect(k.patterns.some((p) => match(p, key))).toBe(false);
  });
});
