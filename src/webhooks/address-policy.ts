// Which addresses a webhook may be sent to. Pure: the caller resolves names; this only judges addresses.
// - public: global unicast; always allowed.
// - private: loopback, RFC 1918, link-local, CGNAT, unique-local, reserved and documentation ranges, NAT64/6to4/
//   Teredo (which embed IPv4 addresses), and the like; allowed only with BERTH_WEBHOOK_ALLOW_PRIVATE=true.
// - never: unspecified, broadcast, multicast, and cloud metadata services; refused even with the flag.
// An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is judged as the IPv4 address it maps to.
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

export type AddressClass =
  | { readonly kind: "public" }
  | { readonly kind: "private"; readonly range: string }
  | { readonly kind: "never"; readonly range: string };

/** Instance metadata endpoints (AWS, GCP, Azure, Alibaba, Oracle, AWS over IPv6): never a webhook target. */
const METADATA = new Set(["169.254.169.254", "169.254.170.2", "168.63.129.16", "100.100.100.200", "192.0.0.192", "fd00:ec2::254"]);
const NEVER_RANGES = new Set(["unspecified", "broadcast", "multicast"]);

/** Classifies an IP address (v4 or v6, as text). Anything that does not parse is `never`. */
export function classifyAddress(text: string): AddressClass {
  const raw = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  // A zone (fe80::1%eth0) only ever names a link-local address.
  if (raw.includes("%")) return { kind: "private", range: "linkLocal" };
  const kind = isIP(raw);
  if (kind === 0) return { kind: "never", range: "not an IP address" };
  // IPv6 in its canonical spelling first (the URL parser's): ipaddr.js reads "::1.2.3.4" as IPv4-mapped, which it is not.
  const parsed = ipaddr.parse(kind === 6 ? new URL(`http://[${raw}]/`).hostname.slice(1, -1) : raw);
  const addr = parsed instanceof ipaddr.IPv6 && parsed.isIPv4MappedAddress() ? parsed.toIPv4Address() : parsed;
  const normal = addr.toNormalizedString();
  if (METADATA.has(normal) || METADATA.has(addr.toString())) return { kind: "never", range: "metadata" };
  const range = addr.range();
  if (NEVER_RANGES.has(range)) return { kind: "never", range };
  if (addr instanceof ipaddr.IPv6 && isIpv4Compatible(addr)) return { kind: "private", range: "ipv4Compatible" };
  if (range === "unicast") return { kind: "public" };
  return { kind: "private", range };
}

/** Why a webhook may not go to `address` (null when it may). */
export function addressRefusal(address: string, allowPrivate: boolean): string | null {
  const c = classifyAddress(address);
  if (c.kind === "public") return null;
  if (c.kind === "private" && allowPrivate) return null;
  const what = c.kind === "never" ? `a ${c.range} address` : `a ${c.range} address (allowed only with BERTH_WEBHOOK_ALLOW_PRIVATE=true)`;
  return `${address} is ${what}`;
}

/** `::a.b.c.d` (deprecated IPv4-compatible IPv6): the first 96 bits zero, and not :: or ::1 (ranges of their own). */
function isIpv4Compatible(addr: ipaddr.IPv6): boolean {
  return addr.parts.slice(0, 6).every((p) => p === 0) && (addr.parts[6] !== 0 || (addr.parts[7] ?? 0) > 1);
}
