// Caps on open connections, in all and per client address (see client-address.ts). A connection over a cap is
// not served: its first request is answered 429 in the contract's shape and the connection is closed, and it is
// closed anyway after REFUSED_GRACE_MS, so refused connections cannot pile up either.
import type { Server } from "node:http";
import type { Socket } from "node:net";
import { BerthError } from "../errors.js";
import { addressKey } from "./client-address.js";

const REFUSED_GRACE_MS = 2000;
const RETRY_AFTER_SECONDS = 5;

export class ConnectionGate {
  private total = 0;
  private readonly byAddress = new Map<string, number>();
  private readonly refused = new WeakMap<Socket, BerthError>();

  constructor(
    private readonly max: number,
    private readonly maxPerAddress: number,
  ) {}

  /** Counts the server's connections from the moment they are accepted. */
  attach(server: Server): void {
    server.prependListener("connection", (socket: Socket) => this.admit(socket));
    // A last resort beyond the polite refusal: the kernel-level accept drops connections past twice the cap.
    server.maxConnections = this.max * 2;
  }

  /** Why the connection `socket` is not served, or undefined when it is. */
  refusal(socket: Socket): BerthError | undefined {
    return this.refused.get(socket);
  }

  /** Open connections, in all or from one address key. */
  open(address?: string): number {
    return address === undefined ? this.total : (this.byAddress.get(address) ?? 0);
  }

  private admit(socket: Socket): void {
    const address = addressKey(socket.remoteAddress);
    const mine = this.byAddress.get(address) ?? 0;
    const why =
      mine >= this.maxPerAddress
        ? `Your address has ${mine} connections open, the most BERTH_MAX_CONNECTIONS_PER_ADDRESS allows (${this.maxPerAddress}); reuse or close some.`
        : this.total >= this.max
          ? `The server has ${this.total} connections open, the most BERTH_MAX_CONNECTIONS allows (${this.max}); retry later.`
          : undefined;
    if (why) {
      this.refused.set(
        socket,
        new BerthError("too_many_connections", why, { retryAfterSeconds: RETRY_AFTER_SECONDS, closeConnection: true }),
      );
      const timer = setTimeout(() => socket.destroy(), REFUSED_GRACE_MS);
      timer.unref();
      socket.once("close", () => clearTimeout(timer));
      return;
    }
    this.total++;
    this.byAddress.set(address, mine + 1);
    socket.once("close", () => {
      this.total--;
      const left = (this.byAddress.get(address) ?? 1) - 1;
      if (left === 0) this.byAddress.delete(address);
      else this.byAddress.set(address, left);
    });
  }
}
