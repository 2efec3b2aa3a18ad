// One delivery attempt: the payload POSTed to the checked address, signed per Standard Webhooks
// (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">).
// No redirect is followed, the answer's body is never read, and the attempt ends within `timeoutMs` whatever the
// receiver does.
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { Webhook } from "standardwebhooks";
import { type Lookup, resolveTarget, type ResolvedTarget, TargetRefused } from "./target.js";

export interface Delivery {
  readonly url: string;
  /** The tenant's `whsec_…` secret. */
  readonly secret: string;
  /** The same on every attempt of one event, so receivers can drop duplicates. */
  readonly webhookId: string;
  /** The JSON text sent, byte for byte the same on every attempt. */
  readonly payload: string;
  readonly timeoutMs: number;
  readonly allowPrivate: boolean;
  /** Tests only: a resolver standing in for DNS. */
  readonly resolve?: Lookup;
}

export type AttemptResult =
  | { readonly ok: true; readonly status: number }
  /** `final`: retrying cannot help (a refused address, a redirect). */
  | { readonly ok: false; readonly error: string; readonly final: boolean; readonly refused: boolean };

export const USER_AGENT = "berth-webhooks/1";

export async function deliverOnce(d: Delivery): Promise<AttemptResult> {
  let target: ResolvedTarget;
  try {
    target = await resolveTarget(d.url, d.allowPrivate, d.resolve);
  } catch (err) {
    if (err instanceof TargetRefused) return { ok: false, error: `refused: ${err.message}`, final: true, refused: true };
    return { ok: false, error: `DNS: ${err instanceof Error ? err.message : String(err)}`, final: false, refused: false };
  }
  const body = Buffer.from(d.payload);
  const now = new Date();
  const headers = {
    "content-type": "application/json",
    "content-length": String(body.length),
    "user-agent": USER_AGENT,
    "webhook-id": d.webhookId,
    "webhook-timestamp": String(Math.floor(now.getTime() / 1000)),
    "webhook-signature": new Webhook(d.secret).sign(d.webhookId, now, body),
  };
  return post(target, headers, body, d.timeoutMs);
}

function post(target: ResolvedTarget, headers: Record<string, string>, body: Buffer, timeoutMs: number): Promise<AttemptResult> {
  // Every connection goes to the address that was checked, whatever a new lookup would answer.
  const pinned: LookupFunction = (_host, options, callback) => {
    if (options.all) callback(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  const { url } = target;
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (r: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = client.request(
      {
        method: "POST",
        hostname: target.host,
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        headers,
        lookup: pinned,
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        // The answer's body means nothing to berth: the connection is dropped rather than read.
        res.destroy();
        if (status >= 200 && status < 300) settle({ ok: true, status });
        else if (status >= 300 && status < 400) {
          settle({ ok: false, error: `answered ${status} (redirects are not followed)`, final: true, refused: false });
        } else settle({ ok: false, error: `answered HTTP ${status}`, final: false, refused: false });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    req.on("error", (err) => settle({ ok: false, error: err.message, final: false, refused: false }));
    req.end(body);
  });
}
