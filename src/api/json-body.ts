// JSON request bodies, refused while they arrive when they could block the event loop: deeper nesting than any
// request of berth's needs, or more values than any sensible request holds, answer 400 at the first byte past the
// limit (the rest is never buffered), and bodies past the route's size limit answer 413 the same way. What passes
// is parsed by Fastify's own parser (which also refuses __proto__ and constructor poisoning).
import type { FastifyInstance, FastifyRequest } from "fastify";
import { BerthError } from "../errors.js";

/** Deepest nesting of arrays and objects accepted (berth's own requests need 2). */
export const MAX_JSON_DEPTH = 32;
/** Most values (array elements and object members) in one body: e.g. 256 command strings and ~50,000 files. */
export const MAX_JSON_ITEMS = 100_000;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;
const COMMA = 0x2c;

/**
 * Follows a JSON text's structure chunk by chunk (strings skipped, escapes honoured) without building anything.
 * Says what is wrong as soon as nesting or the count of values passes its limit; does not check the syntax (the
 * parser does that afterwards).
 */
export class JsonShapeGuard {
  private depth = 0;
  private items = 0;
  private inString = false;
  private escaped = false;

  constructor(
    private readonly maxDepth = MAX_JSON_DEPTH,
    private readonly maxItems = MAX_JSON_ITEMS,
  ) {}

  /** null while the text stays within the limits, else what is wrong. */
  push(chunk: Uint8Array): string | null {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i] as number;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) this.inString = false;
        continue;
      }
      if (c === QUOTE) this.inString = true;
      else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
        if (++this.depth > this.maxDepth) return `it nests arrays and objects deeper than ${this.maxDepth} levels`;
        if (++this.items > this.maxItems) return `it holds more than ${this.maxItems} values`;
      } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) this.depth--;
      else if (c === COMMA && ++this.items > this.maxItems) return `it holds more than ${this.maxItems} values`;
    }
    return null;
  }
}

const tooLarge = (limit: number) =>
  Object.assign(new Error(`Request body is larger than ${limit} bytes`), { statusCode: 413, code: "FST_ERR_CTP_BODY_TOO_LARGE" });

/** Replaces Fastify's JSON parser with one that checks size and shape while the body streams in. */
export function registerJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", (request: FastifyRequest, payload, done) => {
    const limit = request.routeOptions.bodyLimit ?? app.initialConfig.bodyLimit ?? 1024 * 1024;
    const declared = Number(request.headers["content-length"]);
    if (declared > limit) {
      done(tooLarge(limit), undefined);
      return;
    }
    const guard = new JsonShapeGuard();
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      payload.off("data", onData);
      payload.resume(); // whatever still arrives is discarded, never kept
      done(err, undefined);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return fail(tooLarge(limit));
      const problem = guard.push(chunk);
      if (problem) {
        return fail(
          new BerthError("invalid_input", `The JSON body was refused: ${problem}. Send the flat request the API describes.`, {
            closeConnection: true,
          }),
        );
      }
      chunks.push(chunk);
    };
    payload.on("data", onData);
    payload.on("error", (err) => fail(err));
    payload.on("end", () => {
      if (settled) return;
      settled = true;
      parse(request, Buffer.concat(chunks, size).toString("utf8"), done);
    });
  });
}
