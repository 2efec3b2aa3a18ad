// HTTP the way hostile clients send it: node:http on a fresh connection from a chosen loopback address
// (127.0.0.0/8 is all loopback, so each address counts as a separate client), headers exactly as given, and raw
// sockets that send requests byte by byte.
import http from "node:http";
import net from "node:net";

export interface RawResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
  json(): { error: { code: string; message: string } } & Record<string, unknown>;
}

/** One request on a connection of its own (closed afterwards), from `from` (a loopback address) if given. */
export function rawRequest(
  url: string,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; from?: string },
): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: hostname, port, path: opts.path, method: opts.method ?? "GET", headers: opts.headers, localAddress: opts.from, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

/** A raw connection that records everything the server sends and when it closes the connection. */
export interface RawConnection {
  readonly socket: net.Socket;
  /** Everything received so far. */
  received(): string;
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

export async function rawConnect(url: string, from?: string): Promise<RawConnection> {
  const { hostname, port } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port), localAddress: from });
  let data = "";
  let isClosed = false;
  socket.on("data", (d: Buffer) => {
    data += d.toString("latin1");
  });
  socket.on("error", () => undefined); // a reset from the server is one of the outcomes tests look at
  const closed = new Promise<void>((resolve) =>
    socket.once("close", () => {
      isClosed = true;
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, received: () => data, closed, isClosed: () => isClosed };
}
