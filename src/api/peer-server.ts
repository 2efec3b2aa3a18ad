// The HTTP server of a `berth worker` with BERTH_ADVERTISE_URL: only what other hosts' API processes ask it
// (routes/peer.ts, signed requests), /healthz, and this worker's /metrics. An all-in-one `berth serve` mounts the
// same routes on its API.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Deps } from "../app/deps.js";
import { registerErrorHandler } from "./error-handler.js";
import { useZodSchemas } from "./openapi.js";
import { metricsRoutes } from "./routes/metrics.js";
import { peerRoutes } from "./routes/peer.js";

/** Requests to a worker host carry no body. */
const BODY_LIMIT_BYTES = 1024;

export async function buildPeerServer(deps: Deps): Promise<FastifyInstance> {
  const requestTimeoutMs = deps.config.http.requestTimeoutSeconds * 1000;
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: BODY_LIMIT_BYTES,
    routerOptions: { maxParamLength: 2048 },
    // As on the API: the whole request must arrive in time; responses (a large file) are not limited.
    requestTimeout: requestTimeoutMs,
    http: { requestTimeout: requestTimeoutMs, headersTimeout: requestTimeoutMs, connectionsCheckingInterval: 1000 },
  });
  registerErrorHandler(app, BODY_LIMIT_BYTES);
  useZodSchemas(app);
  app.get("/healthz", async () => ({ status: "ok", node: deps.host }));
  await app.register(peerRoutes, { deps });
  // This worker's metrics, where it listens anyway (BERTH_METRICS_TOKEN, or loopback scrapers only).
  await app.register(metricsRoutes, { deps });
  return app;
}
