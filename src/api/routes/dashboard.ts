// The web dashboard (shared/API.md §5): `GET /` serves its page, `/assets/*` its script, stylesheet and icon, all built
// into dist/web by `npm run build` (scripts/build-web.mjs). The page uses only the public API with the caller's key.
// Files go out through @fastify/send (ETag, conditional requests), as archives do. @fastify/static 10 would need an
// ESM-only package through require(), which Node 20 allows but Jest's module loader (every in-process test) does not.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import send from "@fastify/send";
import type { FastifyInstance } from "fastify";
import { BerthError } from "../../errors.js";

/** dist/web, from src/api/routes (tests) as from dist/api/routes (the built server): both sit three levels down. */
export const WEB_ROOT = fileURLToPath(new URL("../../../dist/web/", import.meta.url));

/**
 * Only berth's own files, no inline script or style, no plugins, frames or form posts; Trusted Types with no policy
 * means no string can ever reach an HTML sink (innerHTML and the like throw), so task output can only become text.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

const PAGE_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "cache-control": "no-cache",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

export async function dashboardRoutes(app: FastifyInstance, { root = WEB_ROOT }: { root?: string } = {}): Promise<void> {
  const indexFile = path.join(root, "index.html");
  if (!existsSync(indexFile)) {
    app.get("/", async (_request, reply) =>
      reply.code(503).type("text/plain; charset=utf-8").send("The dashboard has not been built: run `npm run build`, then reload.\n"),
    );
    return;
  }
  // Read once per start: the page names its assets by content hash, so it changes only with a new build.
  const page = readFileSync(indexFile);
  app.get("/", async (_request, reply) => reply.headers(PAGE_HEADERS).type("text/html; charset=utf-8").send(page));

  // Only the files the build wrote are served (an allow-list, not a directory), each with its .br/.gz siblings.
  const dir = path.join(root, "assets");
  const files = new Set(readdirSync(dir));
  app.get("/assets/:name", async (request, reply) => {
    const name = (request.params as { name: string }).name;
    const type = TYPES[path.extname(name)];
    if (!files.has(name) || !type) throw new BerthError("not_found", "No such dashboard file.");
    const accepts = request.headers["accept-encoding"] ?? "";
    const encoding =
      /\bbr\b/.test(accepts) && files.has(`${name}.br`) ? "br" : /\bgzip\b/.test(accepts) && files.has(`${name}.gz`) ? "gzip" : null;
    const file = path.join(dir, encoding === "br" ? `${name}.br` : encoding === "gzip" ? `${name}.gz` : name);
    const result = await send(request.raw, file, {
      etag: true,
      lastModified: false,
      cacheControl: false,
      acceptRanges: false,
      contentType: false,
    });
    if (result.type === "error") throw new BerthError("not_found", "No such dashboard file.");
    if (encoding) void reply.header("content-encoding", encoding);
    // Names carry their content's hash: cached for good, never revalidated.
    return reply
      .code(result.statusCode)
      .headers(result.headers)
      .headers({
        "content-type": type,
        "cache-control": "public, max-age=31536000, immutable",
        vary: "accept-encoding",
        "x-content-type-options": "nosniff",
        "cross-origin-resource-policy": "same-origin",
      })
      .send(result.stream);
  });
}
