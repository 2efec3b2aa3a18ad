// The web dashboard (shared/API.md §5): `GET /` serves its page, `/assets/*` its scripts, styles and icon, all built
// into dist/web by `npm run build` (scripts/build-web.mjs). The page uses only the public API with the caller's key.
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance } from "fastify";

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

export async function dashboardRoutes(app: FastifyInstance, { root = WEB_ROOT }: { root?: string } = {}): Promise<void> {
  const indexFile = `${root}/index.html`;
  if (!existsSync(indexFile)) {
    app.get("/", async (_request, reply) =>
      reply.code(503).type("text/plain; charset=utf-8").send("The dashboard has not been built: run `npm run build`, then reload.\n"),
    );
    return;
  }
  // Built once per start: the page names its assets by content hash, so it changes only with a new build.
  const page = readFileSync(indexFile);
  app.get("/", async (_request, reply) => reply.headers(PAGE_HEADERS).type("text/html; charset=utf-8").send(page));

  // Asset names carry their content's hash, so they can be cached for good; .br/.gz siblings are sent when accepted.
  await app.register(fastifyStatic, {
    root: `${root}/assets`,
    prefix: "/assets/",
    decorateReply: false,
    index: false,
    dotfiles: "deny",
    preCompressed: true,
    cacheControl: false,
    setHeaders: (reply) => {
      reply.headers({
        "cache-control": "public, max-age=31536000, immutable",
        "x-content-type-options": "nosniff",
        "cross-origin-resource-policy": "same-origin",
      });
    },
  });
}
