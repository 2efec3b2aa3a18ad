import type { Command } from "commander";

/** Client commands (submit, status, logs, download, cancel, list) over HTTP. */
export function registerClientCommands(_program: Command): void {}
