// Route schemas in force and the OpenAPI 3.1 document made from them. Requests are validated against each route's
// zod schemas (with the contract's error messages, naming the field), responses are serialized through them (a
// response that does not match is a 500, never a silent drift), and @fastify/swagger turns the same schemas into
// GET /v1/openapi.json. GET /docs shows it with Swagger UI, whose files come from the swagger-ui-dist package.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import send from "@fastify/send";
import swagger from "@fastify/swagger";
import type { FastifyInstance, FastifySchemaCompiler } from "fastify";
import { jsonSchemaTransform, jsonSchemaTransformObject, serializerCompiler } from "fastify-type-provider-zod";
import type { z } from "zod";
import { refusalOf } from "../domain/validate.js";
import { BerthError } from "../errors.js";

const require = createRequire(import.meta.url);
const version = ownVersion();

/** berth's version, from the nearest package.json named berth above this module (src/, dist/ and dist-bench/ alike). */
function ownVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "berth" && pkg.version) return pkg.version;
    } catch {
      // none here: look further up
    }
    const up = path.dirname(dir);
    if (up === dir) return "0.0.0";
    dir = up;
  }
}

const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema, httpPart }) =>
  (data) => {
    const parsed = schema.safeParse(data);
    if (parsed.success) return { value: parsed.data };
    const part = httpPart === "querystring" || httpPart === "params" || httpPart === "headers" ? httpPart : "body";
    return { error: refusalOf(parsed.error, part) };
  };

/** Validates and serializes with the routes' zod schemas. */
export function useZodSchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
}

/** Sets the compilers and starts collecting routes for the document: call before any route is registered. */
export async function registerSchemas(app: FastifyInstance): Promise<void> {
  useZodSchemas(app);
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "berth",
        version,
        description:
          "Run tasks in fresh, locked-down Docker containers with live logs, archived workspaces and scheduled expiry. " +
          'Errors are JSON: {"error": {"code", "message"}}.',
        license: { name: "MIT", identifier: "MIT" },
      },
      components: {
        securitySchemes: {
          apiKey: { type: "http", scheme: "bearer", description: "An API key from BERTH_API_KEYS; it names the tenant." },
          metricsToken: { type: "http", scheme: "bearer", description: "BERTH_METRICS_TOKEN (loopback clients need none without it)." },
        },
      },
      security: [{ apiKey: [] }],
      tags: [
        { name: "tasks", description: "Submit, read, list, cancel and delete tasks" },
        { name: "output", description: "Logs, the archive and the workspace's files" },
        { name: "server", description: "What the server accepts, live counts, health and metrics" },
      ],
    },
    // Every API route has a tag; pages and files (the dashboard, /docs, this document) have none and stay out.
    hideUntagged: true,
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
}

export const OPENAPI_PATH = "/v1/openapi.json";

/** GET /v1/openapi.json and GET /docs (Swagger UI from the installed swagger-ui-dist, nothing from a CDN). */
export async function openApiRoutes(app: FastifyInstance): Promise<void> {
  let document: string | undefined;
  app.get(OPENAPI_PATH, async (_request, reply) => {
    document ??= JSON.stringify(nameWildcards(app.swagger() as unknown as OpenApiDocument));
    return reply.type("application/json; charset=utf-8").header("cache-control", "no-cache").send(document);
  });

  const uiRoot = path.dirname(require.resolve("swagger-ui-dist/package.json"));
  app.get("/docs", async (_request, reply) => reply.headers(DOCS_HEADERS).type("text/html; charset=utf-8").send(DOCS_PAGE));
  app.get("/docs/:file", async (request, reply) => {
    const file = (request.params as { file: string }).file;
    if (file === "docs.js") return reply.headers(DOCS_HEADERS).type("text/javascript; charset=utf-8").send(DOCS_SCRIPT);
    const type = UI_FILES[file];
    if (!type) throw new BerthError("not_found", `No route GET /docs/${file.slice(0, 80)}.`);
    const result = await send(request.raw, path.join(uiRoot, file), { etag: true, lastModified: false, cacheControl: false });
    if (result.type === "error") throw new Error(`Swagger UI's ${file} could not be read`);
    return reply.code(result.statusCode).headers(result.headers).headers(DOCS_HEADERS).type(type).send(result.stream);
  });
}

interface OpenApiDocument {
  paths?: Record<string, Record<string, { parameters?: { in?: string; name?: string }[] }>>;
}

/**
 * Fastify's wildcard is the path parameter "*" (`{*}` in the generated document), which makes an awkward name in a
 * generated client: the document calls it `path` instead. A client sends it as one segment, its "/" escaped as %2F
 * or not; the router reads both the same (and safe-path.ts judges the result either way).
 */
function nameWildcards<T extends OpenApiDocument>(doc: T): T {
  const paths: NonNullable<OpenApiDocument["paths"]> = {};
  for (const [route, item] of Object.entries(doc.paths ?? {})) {
    if (!route.endsWith("/{*}")) {
      paths[route] = item;
      continue;
    }
    for (const op of Object.values(item)) {
      for (const p of op.parameters ?? []) if (p.in === "path" && p.name === "*") p.name = "path";
    }
    paths[`${route.slice(0, -"{*}".length)}{path}`] = item;
  }
  return { ...doc, paths };
}

/** The only files of swagger-ui-dist that /docs/ serves (an allow-list, not a directory). */
const UI_FILES: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>berth API</title>
<link rel="icon" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs.js"></script>
</body>
</html>
`;

/** Starts Swagger UI on this server's document (a file of its own: the page allows no inline script). */
const DOCS_SCRIPT = `window.ui = SwaggerUIBundle({ url: "/v1/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null });
`;

// Swagger UI sets inline styles and shows inline (data:) images; everything else is this server's own.
const DOCS_HEADERS = {
  "content-security-policy": [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};
