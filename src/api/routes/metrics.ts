// GET /metrics: this process's Prometheus metrics (text format). With BERTH_METRICS_TOKEN set, the scraper sends
// `Authorization: Bearer <token>` (compared in constant time); without it, only loopback clients are answered.
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Deps } from "../../app/deps.js";
import { BerthError } from "../../errors.js";
import { errors, raw } from "../schemas.js";

const schema = {
  summary: "Prometheus metrics of this process",
  tags: ["server"],
  security: [{ metricsToken: [] }],
  response: { 200: raw("text/plain", "Prometheus text format 0.0.4"), ...errors(401) },
};

const digest = (s: string) => createHash("sha256").update(s).digest();

export async function metricsRoutes(app: FastifyInstance, { deps }: { deps: Deps }): Promise<void> {
  const { token } = deps.config.metrics;
  const expected = token ? digest(token) : null;

  const allowed = (request: FastifyRequest): boolean => {
    if (!expected) return isLoopbackPeer(request.socket.remoteAddress);
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "");
    return match !== null && timingSafeEqual(digest(match[1] as string), expected);
  };

  app.get("/metrics", { schema }, async (request, reply) => {
    if (!allowed(request)) {
      throw new BerthError(
        "unauthorized",
        expected
          ? 'Send the metrics token as "Authorization: Bearer <BERTH_METRICS_TOKEN>".'
          : "Metrics answer loopback clients only; set BERTH_METRICS_TOKEN to scrape from elsewhere.",
      );
    }
    const { contentType, body } = await deps.metrics.render();
    return reply.type(contentType).header("cache-control", "no-store").send(body);
  });
}

function isLoopbackPeer(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  return v4 === "::1" || (isIP(v4) === 4 && v4.startsWith("127."));
}
