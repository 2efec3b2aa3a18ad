// Liveness and readiness. /readyz names what is down, so an operator knows where to look.
import type { FastifyInstance } from "fastify";
import type { ApiContext } from "../context.js";

export async function healthRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async (_request, reply) => {
    const ok = () => true;
    const down = () => false;
    const { archives } = ctx.deps;
    const [redis, docker, store] = await Promise.all([
      withTimeout(ctx.services.store.ping(), 2000).then(ok, down),
      ctx.checkDocker ? withTimeout(ctx.deps.runtime.ping(), 3000).then(ok, down) : Promise.resolve(true),
      // The store's own check has its own timeout; this one bounds the answer whatever it does.
      withTimeout(archives.check(2500), 3000).then(ok, down),
    ]);
    const state = (up: boolean) => (up ? "ok" : "unreachable");
    const fields = { redis: state(redis), docker: ctx.checkDocker ? state(docker) : "not checked", archiveStore: state(store) };
    if (redis && docker && store) return { status: "ready", ...fields };
    const names = [
      ...(redis ? [] : ["Redis"]),
      ...(docker ? [] : ["Docker"]),
      ...(store ? [] : [`the archive store (${archives.description})`]),
    ];
    return reply.code(503).send({
      error: { code: "dependency_unavailable", message: `Not ready: ${names.join(" and ")} unreachable.` },
      ...fields,
    });
  });
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error("timeout")), ms).unref())]);
}
