// An API process asking the worker host that runs a task for that task's files (routes/peer.ts answers), with a
// signed request (peer-auth.ts), and relaying the answer as it is: status, headers that describe the body, body.
import { pipeline, Readable, Transform } from "node:stream";
import type { FastifyReply } from "fastify";
import { BerthError } from "../errors.js";
import { SIGNATURE_HEADER, signRequest } from "./peer-auth.js";

/** The host has this long to answer with headers, and a body may stall this long between chunks. */
const HEADERS_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 30_000;
const RELAYED_HEADERS = ["content-type", "content-length", "content-disposition"];

/**
 * GETs `pathAndQuery` from the host at `baseUrl` and sends its answer as this request's reply. `signal` aborts the
 * request (the client went away). A host that does not answer is a 503 naming it.
 */
export async function relayFromPeer(
  reply: FastifyReply,
  peer: { readonly nodeId: string; readonly baseUrl: string; readonly secret: string },
  pathAndQuery: string,
  signal: AbortSignal,
): Promise<FastifyReply> {
  const headersTimeout = AbortSignal.timeout(HEADERS_TIMEOUT_MS);
  const ac = new AbortController();
  const abort = () => ac.abort();
  signal.addEventListener("abort", abort, { once: true });
  headersTimeout.addEventListener("abort", abort, { once: true });
  let res: Response;
  try {
    res = await fetch(`${peer.baseUrl}${pathAndQuery}`, {
      headers: { [SIGNATURE_HEADER]: signRequest(peer.secret, "GET", pathAndQuery) },
      signal: ac.signal,
      redirect: "error",
    });
  } catch (err) {
    const why = headersTimeout.aborted ? `no answer within ${HEADERS_TIMEOUT_MS} ms` : (err as Error).message;
    throw new BerthError(
      "dependency_unavailable",
      `The task runs on host "${peer.nodeId}", which does not answer at ${peer.baseUrl} (${why}); retry shortly.`,
      { host: peer.nodeId, retryAfterSeconds: 5 },
      { cause: err },
    );
  } finally {
    headersTimeout.removeEventListener("abort", abort);
  }
  void reply.code(res.status);
  for (const h of RELAYED_HEADERS) {
    const v = res.headers.get(h);
    if (v !== null) void reply.header(h, v);
  }
  const body = res.body ? Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>) : Readable.from([]);
  // An error on the way (the host died mid-body) ends the relayed body with it: the response is cut short.
  const relayed = pipeline(
    body,
    idleTimeout(IDLE_TIMEOUT_MS, () => ac.abort()),
    () => signal.removeEventListener("abort", abort),
  );
  return reply.send(relayed);
}

/** Passes chunks through; calls `onIdle` (and fails) when none has come for `ms`. */
function idleTimeout(ms: number, onIdle: () => void): Transform {
  let timer: NodeJS.Timeout;
  const t = new Transform({
    transform(chunk, _enc, cb) {
      timer.refresh();
      cb(null, chunk);
    },
    flush(cb) {
      clearTimeout(timer);
      cb();
    },
    destroy(err, cb) {
      clearTimeout(timer);
      cb(err);
    },
  });
  timer = setTimeout(() => {
    onIdle();
    t.destroy(new Error(`the host sent nothing for ${ms} ms`));
  }, ms);
  timer.unref();
  return t;
}
