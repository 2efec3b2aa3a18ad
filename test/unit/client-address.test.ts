import { addressKey } from "../../src/api/client-address.js";

describe("addressKey", () => {
  it("counts IPv4 addresses (also IPv4-mapped IPv6) one by one", () => {
    expect(addressKey("127.0.0.2")).toBe("127.0.0.2");
    expect(addressKey("::ffff:127.0.0.2")).toBe("127.0.0.2");
  });

  it("counts an IPv6 address by its /64 network, whatever its spelling", () => {
    expect(addressKey("2001:db8:0:1::5")).toBe("2001:db8:0:1::/64");
    expect(addressKey("2001:0DB8:0000:0001:ffff:1:2:3")).toBe("2001:db8:0:1::/64");
    expect(addressKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(addressKey("::1")).toBe("0:0:0:0::/64");
  });

  it("has a key for a missing address", () => {
    expect(addressKey(undefined)).toBe("unknown");
  });
});
