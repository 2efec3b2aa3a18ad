// Sending one workspace file as a download, wherever it was read from (the live workspace, an archive, another
// host): the same headers, and a response that never promises more bytes than it delivers.
import { pipeline, type Readable, Transform } from "node:stream";
import type { FastifyReply } from "fastify";
import { BerthError } from "../errors.js";

/** Replies with `size` bytes of `stream` as `application/octet-stream`, named after the last component of `rel`. */
export function sendFile(reply: FastifyReply, rel: string, file: { size: number; stream: Readable | null }): FastifyReply {
  const { size, stream } = file;
  // The length is the size at open; a file still being written may end up longer (we stop at `size`) or shorter
  // (the response is then cut off, so the client sees a broken download instead of waiting for promised bytes).
  if (size === 0) stream?.destroy();
  const body =
    size === 0 || !stream
      ? ""
      : pipeline(
          stream,
          exactly(size, rel, () => {
            // Nothing sent yet: let the error handler answer with JSON instead of the file's headers.
            if (!reply.raw.headersSent) for (const h of ["content-type", "content-length", "content-disposition"]) reply.removeHeader(h);
          }),
          () => undefined,
        );
  return reply
    .type("application/octet-stream")
    .header("content-length", String(size))
    .header("content-disposition", `attachment; filename="${sanitizeFilename(rel.split("/").pop() as string)}"`)
    .send(body);
}

/** Passes the file's bytes through and fails (cutting the response short) if fewer than `size` arrive. */
function exactly(size: number, rel: string, onShort: () => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      const room = size - seen;
      seen += chunk.length;
      callback(null, chunk.length > room ? chunk.subarray(0, Math.max(0, room)) : chunk);
    },
    flush(callback) {
      if (seen >= size) return callback();
      // Before the first byte this is still a clean 409; later the response is cut off (headers are already sent).
      onShort();
      callback(
        new BerthError("wrong_state", `File "${rel}" shrank from ${size} to ${seen} bytes while it was read; retry.`, { path: rel }),
      );
    },
  });
}

const sanitizeFilename = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 200) || "file";
