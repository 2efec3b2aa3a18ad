// Requests between berth's own processes (an API process asking a worker host for a running task's files) are
// signed with BERTH_CLUSTER_SECRET: HMAC-SHA256 over the method, the path with its query, and the time in seconds.
// A signature is good for a short while only, and is compared in constant time. Pure: no I/O.
import { createHmac, timingSafeEqual } from "node:crypto";

/** The header carrying `t=<unix seconds>,v1=<hex HMAC>`. */
export const SIGNATURE_HEADER = "x-berth-signature";
/** How far a signature's time may be from the receiver's clock, either way. */
export const SIGNATURE_MAX_SKEW_SECONDS = 30;

const mac = (secret: string, method: string, pathAndQuery: string, t: number) =>
  createHmac("sha256", secret).update(`${method.toUpperCase()}\n${pathAndQuery}\n${t}`).digest();

/** The signature header's value for a request made now. */
export function signRequest(secret: string, method: string, pathAndQuery: string, nowMs = Date.now()): string {
  const t = Math.floor(nowMs / 1000);
  return `t=${t},v1=${mac(secret, method, pathAndQuery, t).toString("hex")}`;
}

/** Why a request's signature is refused, or null when it is good. */
export function checkSignature(
  secret: string,
  method: string,
  pathAndQuery: string,
  header: string | undefined,
  nowMs = Date.now(),
): string | null {
  if (!header) return "the request is not signed";
  const m = /^t=(\d{1,12}),v1=([0-9a-f]{64})$/.exec(header);
  if (!m) return "the signature is malformed";
  const t = Number(m[1]);
  if (Math.abs(nowMs / 1000 - t) > SIGNATURE_MAX_SKEW_SECONDS) return "the signature has expired (or the clocks differ)";
  const given = Buffer.from(m[2] as string, "hex");
  return timingSafeEqual(given, mac(secret, method, pathAndQuery, t)) ? null : "the signature does not match";
}
