// A real HTTP receiver on loopback for webhook tests: records every request, answers as the test says.
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** What to do with the n-th request (0-based): answer with a status (and headers), or never answer. */
export type Answer = { status: number; headers?: Record<string, string> } | "hang";

export interface Receiver {
  readonly url: string;
  readonly requests: Received[];
  /** Requests not answered yet, and the most there ever were at once. */
  readonly open: { now: number; max: number };
  close(): Promise<void>;
}

export async function startReceiver(
  answer: (n: number, req: Received) => Answer | Promise<Answer> = () => ({ status: 204 }),
): Promise<Receiver> {
  const requests: Received[] = [];
  const open = { now: 0, max: 0 };
  const server = http.createServer((req, res) => {
    open.now++;
    open.max = Math.max(open.max, open.now);
    res.on("close", () => open.now--);
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const r: Received = { path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString("utf8") };
      const n = requests.length;
      requests.push(r);
      void Promise.resolve(answer(n, r)).then((a) => {
        if (a === "hang") return; // the socket stays open until berth gives up on it
        if (!res.destroyed) res.writeHead(a.status, a.headers).end("ignored by berth");
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    open,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback URL where nothing listens. */
export async function deadUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/hook`;
}
