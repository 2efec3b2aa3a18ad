import type { Command } from "commander";

/** Operator commands on the local disk and Redis. */
export function registerWorkspaceCommands(_program: Command): void {}
