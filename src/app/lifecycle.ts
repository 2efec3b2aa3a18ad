// What was opened is closed, last opened first, once.
import type { Logger } from "pino";

type Closer = { readonly name: string; readonly close: () => Promise<unknown> | unknown };

export class Lifecycle {
  private readonly closers: Closer[] = [];
  private closing: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  /** Register right after opening something, so a failure later in start-up still closes it. */
  defer(name: string, close: Closer["close"]): void {
    this.closers.push({ name, close });
  }

  /** Idempotent: a second call waits for the same shutdown. */
  close(): Promise<void> {
    this.closing ??= this.closeAll();
    return this.closing;
  }

  private async closeAll(): Promise<void> {
    for (const { name, close } of [...this.closers].reverse()) {
      try {
        await close();
        this.logger.info({ component: name }, "closed");
      } catch (err) {
        this.logger.error({ err, component: name }, "close failed; continuing");
      }
    }
  }
}
