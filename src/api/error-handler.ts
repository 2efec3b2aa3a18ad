// The one place where an error becomes an HTTP status and body.
import type { FastifyError, FastifyInstance } from "fastify";
import { isBerthError, type ErrorCode } from "../errors.js";

const STATUS: Record<ErrorCode, number> = {
  invalid_input: 400,
  unauthorized: 401,
  not_found: 404,
  wrong_state: 409,
  archive_not_ready: 409,
  expired: 410,
  too_large: 413,
  range_not_satisfiable: 416,
  tenant_over_limit: 429,
  rate_limited: 429,
  dependency_unavailable: 503,
  invalid_config: 500,
  internal_error: 500,
};

/** ioredis/BullMQ errors that mean "Redis is not reachable right now". */
const isRedisDown = (err: Error) =>
  /Connection is closed|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|max retries per request|ETIMEDOUT/i.test(err.message);

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler<FastifyError>((err, request, reply) => {
    if (isBerthError(err)) {
      const status = STATUS[err.code];
      if (status >= 500) request.log.error({ err }, "request failed");
      const retryAfter = err.details.retryAfterSeconds;
      if (typeof retryAfter === "number") void reply.header("retry-after", String(retryAfter));
      return reply.code(status).send({ error: { code: err.code, message: err.message } });
    }
    if (err.validation || (err.statusCode !== undefined && err.statusCode < 500)) {
      const code: ErrorCode = err.statusCode === 413 ? "too_large" : err.statusCode === 404 ? "not_found" : "invalid_input";
      const message =
        err.statusCode === 413 ? `The request body is larger than BERTH_MAX_BODY_BYTES allows; send smaller files.` : err.message;
      return reply.code(STATUS[code]).send({ error: { code, message } });
    }
    if (isRedisDown(err)) {
      request.log.warn({ err }, "redis unavailable");
      void reply.header("retry-after", "5");
      return reply.code(503).send({ error: { code: "dependency_unavailable", message: "Redis is unreachable; retry shortly." } });
    }
    request.log.error({ err }, "unexpected error");
    return reply.code(500).send({
      error: { code: "internal_error", message: `Something broke on our side; quote request id ${request.id} when reporting it.` },
    });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: "not_found", message: `No route ${request.method} ${request.url.split("?")[0]}.` } }),
  );
}
