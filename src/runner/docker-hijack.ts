// A hijacked attach with stdin: `POST /containers/{id}/attach?stdin=1…` with `Upgrade: tcp`, answered by
// `101 UPGRADED`, after which the connection carries the container's stdin one way and its multiplexed output the
// other, exactly as the docker CLI's `run -i` does. dockerode's attach with stdin never sends its request
// (it waits for a body that is never ended) and docker-modem's hijack sends a chunked body the engine may read as
// stdin, so the request is made here, with no body at all, over the connection docker-modem was set up for.
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";

/** Where the engine listens, as docker-modem resolved it (DOCKER_HOST and its TLS settings). */
export interface EngineAddress {
  readonly socketPath?: string;
  readonly protocol?: string;
  readonly host?: string;
  readonly port?: string | number;
  readonly ca?: string | string[] | Buffer | Buffer[];
  readonly cert?: string | string[] | Buffer | Buffer[];
  readonly key?: string | string[] | Buffer | Buffer[];
}

/** Whether {@link hijackAttach} can reach this engine (a unix socket, http or https; not ssh). */
export const canHijack = (a: EngineAddress): boolean => typeof a.socketPath === "string" || a.protocol === "http" || a.protocol === "https";

/**
 * Attaches to stdin, stdout and stderr of container `id` (created, not yet started: nothing it prints is missed)
 * and resolves with the raw connection once the engine has switched protocols. Writing sends stdin; `end()`
 * closes it (the container must be created with `OpenStdin` and `StdinOnce`); reading yields Docker's
 * multiplexed frames (Tty off) until the container's output ends.
 */
export function hijackAttach(address: EngineAddress, apiVersion: string, id: string, timeoutMs = 30_000): Promise<Socket> {
  const path = `/${apiVersion}/containers/${encodeURIComponent(id)}/attach?stream=1&stdin=1&stdout=1&stderr=1`;
  const headers = { Connection: "Upgrade", Upgrade: "tcp", "Content-Length": "0", Host: "docker" };
  const tls = address.protocol === "https";
  const options: https.RequestOptions = address.socketPath
    ? { socketPath: address.socketPath, path, method: "POST", headers }
    : {
        host: address.host,
        port: address.port,
        path,
        method: "POST",
        headers,
        ...(tls ? { ca: address.ca, cert: address.cert, key: address.key } : {}),
      };
  return new Promise((resolve, reject) => {
    const req = (tls ? https : http).request({ ...options, agent: false });
    const timer = setTimeout(() => req.destroy(new Error(`the engine did not answer the attach within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    req.once("upgrade", (_res, socket, head) => {
      clearTimeout(timer);
      if (head.length > 0) socket.unshift(head);
      socket.setNoDelay(true);
      resolve(socket as Socket);
    });
    req.once("response", (res) => {
      clearTimeout(timer);
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        if (body.length < 1000) body += c;
      });
      res.once("end", () =>
        reject(
          Object.assign(new Error(`The engine refused the attach (HTTP ${res.statusCode}): ${body.trim().slice(0, 300)}`), {
            statusCode: res.statusCode,
          }),
        ),
      );
    });
    req.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end();
  });
}
