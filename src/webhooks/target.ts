// Where a webhook goes: its host resolved once, every address it resolves to judged (address-policy.ts), and the
// address that was judged is the one connected to (deliver.ts pins it), so a second DNS answer cannot differ.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { BerthError, errnoOf } from "../errors.js";
import { addressRefusal } from "./address-policy.js";

export interface ResolvedTarget {
  readonly url: URL;
  /** The URL's host without IPv6 brackets: the Host header and the TLS server name. */
  readonly host: string;
  readonly address: string;
  readonly family: 4 | 6;
}

/** The target is not allowed (a refused address): retrying will not help. */
export class TargetRefused extends Error {
  override readonly name = "TargetRefused";
}

/** Longest a submit waits for DNS before accepting the URL unchecked (delivery checks it again). */
const SUBMIT_LOOKUP_MS = 5000;

export type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;
const systemLookup: Lookup = (host) => lookup(host, { all: true, verbatim: true });

/**
 * Resolves the URL's host and checks every address it has. Throws TargetRefused when any is refused (a name with
 * one public and one private address could be steered to the private one), or the resolver's error.
 */
export async function resolveTarget(rawUrl: string, allowPrivate: boolean, resolve: Lookup = systemLookup): Promise<ResolvedTarget> {
  const url = new URL(rawUrl);
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await resolve(host);
  if (addresses.length === 0) throw Object.assign(new Error(`${host} has no address`), { code: "ENOTFOUND" });
  for (const a of addresses) {
    const refusal = addressRefusal(a.address, allowPrivate);
    if (refusal) throw new TargetRefused(isIP(host) ? refusal : `${host} resolves to ${refusal}`);
  }
  const first = addresses[0] as { address: string; family: number };
  return { url, host, address: first.address, family: first.family === 6 ? 6 : 4 };
}

/**
 * The check at submit: a refused address, or a name that does not exist, is a 400 naming the field. When DNS
 * cannot answer now (a timeout, a resolver failure), the URL is accepted: each delivery attempt checks it again.
 */
export async function checkWebhookAtSubmit(rawUrl: string, allowPrivate: boolean, field = "webhook.url", resolve?: Lookup): Promise<void> {
  const timeout = new Promise<"timeout">((r) => setTimeout(r, SUBMIT_LOOKUP_MS, "timeout").unref());
  try {
    await Promise.race([resolveTarget(rawUrl, allowPrivate, resolve), timeout]);
  } catch (err) {
    if (err instanceof TargetRefused) throw new BerthError("invalid_input", `Invalid ${field}: ${err.message}.`, { field });
    const code = errnoOf(err);
    if (code === "ENOTFOUND" || code === "ENODATA") {
      throw new BerthError("invalid_input", `Invalid ${field}: its host does not resolve (${code}).`, { field });
    }
    // EAI_AGAIN and the like: DNS is unwell, not the URL.
  }
}
