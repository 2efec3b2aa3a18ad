// The HTTP server of a `berth worker` with BERTH_ADVERTISE_URL: only what other hosts' API processes ask it
// (routes/peer.ts, signed requests) and /healthz. An all-in-one `berth serve` mounts the same routes on its API.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Deps } from "../app/deps.js";
import { registerErrorHandler } from "./error-handler.js";
import { peerRoutes } from "./routes/peer.js";

export async function buildPeerServer(deps: Deps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    bodyLimit: 1024,
    routerOptions: { maxParamLength: 2048 },
    requestTimeout: 0,
  });
  registerErrorHandler(app);
  app.get("/healthz", async () => ({ status: "ok", node: deps.host }));
  await app.register(peerRoutes, { deps });
  return app;
}
