// Settings of the client commands (`berth submit`, `logs`, …): where the server is and which key to send.
// Read here, beside the server's configuration, so that no other module reads the environment.

import { DEFAULT_BERTH_URL } from "../contract/types.js";

export interface ClientEnv {
  /** `BERTH_URL`, or {@link DEFAULT_BERTH_URL}. */
  readonly url: string;
  /** Whether `BERTH_URL` was set (error messages say which address was used). */
  readonly urlFromEnv: boolean;
  /** `BERTH_API_KEY`, if set. */
  readonly apiKey: string | undefined;
}

export function clientEnv(env: NodeJS.ProcessEnv = process.env): ClientEnv {
  return { url: env.BERTH_URL || DEFAULT_BERTH_URL, urlFromEnv: Boolean(env.BERTH_URL), apiKey: env.BERTH_API_KEY || undefined };
}
