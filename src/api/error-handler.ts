// The one place where an error becomes an HTTP status and body: `{"error": {"code", "message"}}`, whether a route
// threw it, Fastify refused the request (bad URL, content type, body) or Node's HTTP parser did (headers too
// large, a request too slow to arrive).
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { isBerthError, type ErrorCode } from "../errors.js";
import { isRedisUnavailable } from "../store/redis.js";

const STATUS: Record<ErrorCode, number> = {
  invalid_input: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  request_timeout: 408,
  wrong_state: 409,
  archive_not_ready: 409,
  changes_not_available: 409,
  task_on_other_host: 409,
  expired: 410,
  too_large: 413,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  idempotency_key_reused: 422,
  tenant_over_limit: 429,
  quota_exceeded: 429,
  rate_limited: 429,
  too_many_streams: 429,
  too_many_connections: 429,
  headers_too_large: 431,
  dependency_unavailable: 503,
  shutting_down: 503,
  invalid_config: 500,
  internal_error: 500,
};

/** The wire body of an error. */
export const errorBody = (code: ErrorCode, message: string) => ({ error: { code, message } });

/** Fastify's own 4xx errors (FST_ERR_*): their status kept, a code of ours, and a message saying what to do. */
function frameworkError(err: FastifyError, request: FastifyRequest, maxBodyBytes: number): [number, ErrorCode, string] {
  const status = err.statusCode ?? 400;
  if (status === 413) {
    const limit = request.routeOptions.bodyLimit ?? maxBodyBytes;
    const hint = limit >= maxBodyBytes ? "BERTH_MAX_BODY_BYTES allows; send smaller files" : "this route takes (it needs no body)";
    return [413, "too_large", `The request body is larger than ${limit} bytes, the most ${hint}.`];
  }
  if (status === 404) return [404, "not_found", err.message];
  if (status === 415) {
    return [415, "unsupported_media_type", `${err.message}; send a JSON body with "Content-Type: application/json".`];
  }
  return [status >= 400 && status < 500 ? status : 400, "invalid_input", err.message];
}

export function registerErrorHandler(app: FastifyInstance, maxBodyBytes: number): void {
  app.setErrorHandler<FastifyError>((err, request, reply) => {
    if (isBerthError(err)) {
      const status = STATUS[err.code];
      if (status >= 500) request.log.error({ err }, "request failed");
      const retryAfter = err.details.retryAfterSeconds;
      if (typeof retryAfter === "number") void reply.header("retry-after", String(retryAfter));
      if (err.details.closeConnection === true) void reply.header("connection", "close");
      return reply.code(status).send(errorBody(err.code, err.message));
    }
    if (err.validation || (err.statusCode !== undefined && err.statusCode < 500)) {
      const [status, code, message] = frameworkError(err, request, maxBodyBytes);
      return reply.code(status).send(errorBody(code, message));
    }
    if (isRedisUnavailable(err)) {
      request.log.warn({ err }, "redis unavailable");
      void reply.header("retry-after", "5");
      return reply.code(503).send(errorBody("dependency_unavailable", "Redis is unreachable; retry shortly."));
    }
    request.log.error({ err }, "unexpected error");
    return reply
      .code(500)
      .send(errorBody("internal_error", `Something broke on our side; quote request id ${request.id} when reporting it.`));
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send(errorBody("not_found", `No route ${request.method} ${request.url.split("?")[0]}.`)),
  );
}

/** Fastify's `frameworkErrors`: a URL that cannot be decoded, a parameter that is too long. */
export function onFrameworkError(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (err.code === "FST_ERR_MAX_PARAM_LENGTH") {
    void reply.code(404).send(errorBody("not_found", "No such resource: a path parameter is longer than any id berth makes."));
    return;
  }
  void reply.code(400).send(errorBody("invalid_input", `The request URL is not valid: ${err.message}.`));
}

/**
 * Node's `clientError`: the request could not be parsed (or did not arrive in time), so no route ever saw it.
 * Answers on the raw socket, in the contract's shape, and closes the connection.
 */
export function onClientError(err: NodeJS.ErrnoException, socket: Duplex, requestTimeoutSeconds: number): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  let status: number;
  let body: ReturnType<typeof errorBody>;
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
    status = 408;
    body = errorBody(
      "request_timeout",
      `The request did not arrive within ${requestTimeoutSeconds} s (BERTH_REQUEST_TIMEOUT_SECONDS); send it again, faster.`,
    );
  } else if (err.code === "HPE_HEADER_OVERFLOW") {
    status = 431;
    body = errorBody(
      "headers_too_large",
      "The request's headers are larger than the server accepts (16 KiB); send fewer or smaller headers.",
    );
  } else {
    status = 400;
    body = errorBody("invalid_input", "The request is not valid HTTP/1.1.");
  }
  // A response already begun (a route answered before the body had arrived) cannot be followed by another one.
  const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !current?.headersSent) {
    const text = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
    );
  }
  socket.destroy();
}
