#!/usr/bin/env node
// `berth` command line: server roles, and client commands over HTTP (BERTH_URL, BERTH_API_KEY).
import { Command } from "commander";
import { isBerthError } from "../errors.js";
import type { ServerRole } from "../main.js";
import { registerChangeCommands } from "./commands/changes.js";
import { exitCodeFor, registerClientCommands } from "./commands/client.js";
import { registerAccountCommands } from "./commands/account.js";
import { registerCacheCommands } from "./commands/cache.js";
import { registerWorkspaceCommands } from "./commands/workspace.js";

const program = new Command()
  .name("berth")
  .description("Run tasks in fresh, locked-down Docker containers.")
  .showHelpAfterError()
  .enablePositionalOptions();

for (const [role, what] of [
  ["serve", "HTTP API, worker and cleanup scheduler in one process"],
  ["api", "only the HTTP API"],
  ["worker", "only a worker (and this host's cleanup)"],
] as const) {
  // Loaded on demand: client commands should not pay for loading the server (Redis, Docker, Fastify).
  program
    .command(role)
    .description(`run ${what}`)
    .action(async () => (await import("../main.js")).runServer(role as ServerRole));
}
registerClientCommands(program);
registerAccountCommands(program);
registerChangeCommands(program);
registerWorkspaceCommands(program);
registerCacheCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  // Errors print their message, not a stack trace: the messages say what to do.
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`berth: ${message}\n`);
  // Client errors (BerthApiError, usage): 69 unreachable, 2 invalid input, 1 otherwise (see `berth submit --help`).
  process.exit(isBerthError(err) && err.code === "invalid_config" ? 2 : (exitCodeFor(err) ?? 1));
});
