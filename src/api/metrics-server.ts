// A listener that serves only /metrics and /healthz (BERTH_METRICS_PORT): for `berth worker`, which has no API.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Deps } from "../app/deps.js";
import { registerErrorHandler } from "./error-handler.js";
import { useZodSchemas } from "./openapi.js";
import { metricsRoutes } from "./routes/metrics.js";

export async function buildMetricsServer(deps: Deps): Promise<FastifyInstance> {
  const app = Fastify({ loggerInstance: deps.logger as FastifyBaseLogger, disableRequestLogging: true });
  registerErrorHandler(app, deps.config.http.maxBodyBytes);
  useZodSchemas(app);
  app.get("/healthz", async () => ({ status: "ok" }));
  await app.register(metricsRoutes, { deps });
  return app;
}
