// Liveness and readiness. /readyz names what is down, so an operator knows where to look.
import type { FastifyInstance } from "fastify";
import type { ApiContext } from "../context.js";

export async function healthRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    const [redis, docker] = await Promise.all([
      withTimeout(ctx.services.store.ping(), 2000).then(
        () => true,
        () => false,
      ),
      ctx.checkDocker
        ? withTimeout(ctx.deps.runtime.ping(), 3000).then(
            () => true,
            () => false,
          )
        : Promise.resolve(true),
    ]);
    const down = [...(redis ? [] : ["redis"]), ...(docker ? [] : ["docker"])];
    if (down.length === 0) return { status: "ready", redis: "ok", docker: ctx.checkDocker ? "ok" : "not checked" };
    return reply.code(503).send({
      error: {
        code: "dependency_unavailable",
        message: `Not ready: ${down.map((d) => (d === "redis" ? "Redis" : "Docker")).join(" and ")} unreachable.`,
      },
      redis: redis ? "ok" : "unreachable",
      docker: docker ? "ok" : "unreachable",
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms).unref())]);
}
