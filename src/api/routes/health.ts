// Liveness and readiness. /readyz names what is down, so an operator knows where to look.
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ApiContext } from "../context.js";
import { ErrorBody } from "../schemas.js";

const Ready = z.object({
  status: z.literal("ready"),
  redis: z.literal("ok"),
  docker: z.enum(["ok", "not checked"]),
  archiveStore: z.literal("ok"),
});

export async function healthRoutes(app: FastifyInstance, { ctx }: { ctx: ApiContext }): Promise<void> {
  const open = { tags: ["server"], security: [] };
  app.get("/healthz", { schema: { ...open, summary: "Liveness", response: { 200: z.object({ status: z.literal("ok") }) } } }, async () => ({
    status: "ok",
  }));

  const readiness = {
    ...open,
    summary: "Readiness",
    description: "503 naming what is unreachable: Redis, Docker or the archive store.",
    response: { 200: Ready, 503: ErrorBody },
  };
  app.get("/readyz", { schema: readiness }, async (_request, reply) => {
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
