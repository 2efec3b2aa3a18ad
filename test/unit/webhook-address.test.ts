// Which addresses a webhook may go to, and what a submit says about a URL it refuses.
import { loadConfig, webhookUrlProblem } from "../../src/config/config.js";
import { addressRefusal, classifyAddress } from "../../src/webhooks/address-policy.js";
import { checkWebhookAtSubmit, resolveTarget, TargetRefused } from "../../src/webhooks/target.js";

describe("classifyAddress", () => {
  it.each([["8.8.8.8"], ["93.184.215.14"], ["2606:4700:4700::1111"], ["2a00:1450:4001:82b::200e"], ["::ffff:8.8.8.8"]])(
    "%s is public",
    (a) => {
      expect(classifyAddress(a)).toEqual({ kind: "public" });
      expect(addressRefusal(a, false)).toBeNull();
    },
  );

  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["::1", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.1.1", "linkLocal"],
    ["fe80::1", "linkLocal"],
    ["fe80::1%eth0", "linkLocal"],
    ["100.64.0.1", "carrierGradeNat"],
    ["fd12:3456::1", "uniqueLocal"],
    ["fc00::1", "uniqueLocal"],
    ["192.0.2.10", "reserved"],
    ["240.0.0.1", "reserved"],
    ["2001:db8::1", "reserved"],
    ["64:ff9b::a00:1", "rfc6052"],
    ["2002:a00:1::1", "6to4"],
    ["::127.0.0.1", "ipv4Compatible"],
    ["::8.8.8.8", "ipv4Compatible"],
    ["::808:808", "ipv4Compatible"],
    // IPv4-mapped IPv6 is judged as the IPv4 address it carries.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:7f00:1", "loopback"],
  ])("%s is private (%s): refused unless allowed", (a, range) => {
    expect(classifyAddress(a)).toEqual({ kind: "private", range });
    expect(addressRefusal(a, false)).toMatch(/allowed only with BERTH_WEBHOOK_ALLOW_PRIVATE=true/);
    expect(addressRefusal(a, true)).toBeNull();
  });

  it.each([
    ["0.0.0.0", "unspecified"],
    ["0.1.2.3", "unspecified"],
    ["::", "unspecified"],
    ["255.255.255.255", "broadcast"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["ff02::1", "multicast"],
    ["169.254.169.254", "metadata"],
    ["::ffff:169.254.169.254", "metadata"],
    ["fd00:ec2::254", "metadata"],
    ["168.63.129.16", "metadata"],
    ["100.100.100.200", "metadata"],
    ["not-an-ip", "not an IP address"],
  ])("%s is never a target (%s), not even when private targets are allowed", (a, range) => {
    expect(classifyAddress(a)).toEqual({ kind: "never", range });
    expect(addressRefusal(a, true)).toContain(a);
  });
});

describe("resolveTarget", () => {
  const resolver = (answers: Record<string, string[]>) => async (host: string) => {
    const list = answers[host];
    if (!list) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return list.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));
  };

  it("keeps the first address it checked, to connect to it", async () => {
    const t = await resolveTarget("https://hooks.example/x?y=1", false, resolver({ "hooks.example": ["93.184.215.14", "2606:2800::1"] }));
    expect(t).toMatchObject({ host: "hooks.example", address: "93.184.215.14", family: 4 });
  });

  it("refuses a name when any of its addresses is refused", async () => {
    const lookup = resolver({ "mixed.example": ["93.184.215.14", "10.0.0.5"] });
    await expect(resolveTarget("https://mixed.example/", false, lookup)).rejects.toThrow(TargetRefused);
    await expect(resolveTarget("https://mixed.example/", false, lookup)).rejects.toThrow(/mixed\.example resolves to 10\.0\.0\.5/);
  });

  it("judges IP literals without DNS, in every spelling the URL parser accepts", async () => {
    const none = resolver({});
    await expect(resolveTarget("http://[::1]:8080/", false, none)).rejects.toThrow(/::1 is a loopback address/);
    await expect(resolveTarget("http://2130706433/", false, none)).rejects.toThrow(/127\.0\.0\.1 is a loopback/);
    await expect(resolveTarget("http://0x7f.1/", false, none)).rejects.toThrow(/127\.0\.0\.1 is a loopback/);
    await expect(resolveTarget("http://[::ffff:169.254.169.254]/", true, none)).rejects.toThrow(/metadata/);
    expect(await resolveTarget("http://[::1]:8080/", true, none)).toMatchObject({ host: "::1", address: "::1", family: 6 });
  });
});

describe("checkWebhookAtSubmit", () => {
  const failing = (code: string) => async () => {
    throw Object.assign(new Error(code), { code });
  };

  it("answers 400 naming the field for a refused address", async () => {
    await expect(checkWebhookAtSubmit("http://127.0.0.1:9/hook", false)).rejects.toMatchObject({
      code: "invalid_input",
      message: expect.stringMatching(/^Invalid webhook\.url: 127\.0\.0\.1 is a loopback address/),
      details: { field: "webhook.url" },
    });
    await expect(checkWebhookAtSubmit("http://127.0.0.1:9/hook", true)).resolves.toBeUndefined();
  });

  it("answers 400 for a host that does not exist, and accepts one DNS cannot answer for now", async () => {
    await expect(checkWebhookAtSubmit("https://nowhere.invalid/", false, "webhook.url", failing("ENOTFOUND"))).rejects.toThrow(
      /Invalid webhook\.url: its host does not resolve \(ENOTFOUND\)/,
    );
    await expect(checkWebhookAtSubmit("https://flaky.example/", false, "webhook.url", failing("EAI_AGAIN"))).resolves.toBeUndefined();
  });
});

describe("webhook URLs on their face", () => {
  it.each([
    ["ftp", "ftp://example.com/x", "must use http or https, not ftp"],
    ["file", "file:///etc/passwd", "must use http or https, not file"],
    ["credentials", "https://user:pw@example.com/", "must not carry credentials (user:password@)"],
    ["relative", "example.com/hook", "must be an absolute http:// or https:// URL"],
    ["too long", `https://example.com/${"a".repeat(2100)}`, "must be at most 2048 characters"],
  ])("refuses a URL: %s", (_what, url, problem) => {
    expect(webhookUrlProblem(url)).toBe(problem);
  });

  it("accepts http and https URLs", () => {
    expect(webhookUrlProblem("https://hooks.example/berth?token=x")).toBeNull();
    expect(webhookUrlProblem("http://[::1]:8080/")).toBeNull();
  });
});

describe("webhook settings", () => {
  const secret = `whsec_${Buffer.alloc(32, 7).toString("base64")}`;
  const message = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return "no error";
    } catch (err) {
      return (err as Error).message;
    }
  };

  it("reads tenant defaults and secrets", () => {
    const c = loadConfig({ BERTH_WEBHOOKS: "acme:https://hooks.acme.example/berth", BERTH_WEBHOOK_SECRETS: `acme:${secret}` });
    expect(c.webhooks.defaults.get("acme")).toBe("https://hooks.acme.example/berth");
    expect(c.webhooks.secrets.get("acme")).toBe(secret);
    expect(c.webhooks).toMatchObject({ allowPrivate: false, attempts: 8, backoffMs: 30_000, timeoutMs: 10_000 });
  });

  it("refuses a default without a secret, a weak secret, and a bad default URL, without echoing them", () => {
    expect(message({ BERTH_WEBHOOKS: "acme:https://hooks.acme.example/" })).toMatch(
      /^Invalid BERTH_WEBHOOKS: tenant "acme" has no secret in BERTH_WEBHOOK_SECRETS/,
    );
    const weak = message({ BERTH_WEBHOOK_SECRETS: `acme:whsec_${Buffer.alloc(8).toString("base64")}` });
    expect(weak).toMatch(/^Invalid BERTH_WEBHOOK_SECRETS: the secret of tenant "acme" must be whsec_ and the base64 of 24 to 64/);
    expect(message({ BERTH_WEBHOOK_SECRETS: "acme:not-a-secret" })).not.toContain("not-a-secret");
    const bad = message({ BERTH_WEBHOOKS: "acme:ftp://x.example/?token=s3cr3t", BERTH_WEBHOOK_SECRETS: `acme:${secret}` });
    expect(bad).toMatch(/^Invalid BERTH_WEBHOOKS: the URL of tenant "acme" must use http or https/);
    expect(bad).not.toContain("s3cr3t");
  });
});
