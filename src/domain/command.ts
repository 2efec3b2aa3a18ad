// What a task's command and environment may weigh, and how a long command is shown in lists.
import querystring from "node:querystring";

//
// The kernel takes a program's arguments and environment together on the new process's stack, and refuses an
// exec (E2BIG) when they need more than ARG_MAX: each string with its NUL, plus one pointer per string. ARG_MAX is a
// quarter of the stack limit, 2 MiB with the usual 8 MiB (`getconf ARG_MAX`), which task containers inherit from
// the engine. No single string may exceed MAX_ARG_STRLEN (32 pages, 128 KiB, NUL included). Room is kept for what
// the engine, the image and the init process add (PATH, HOSTNAME, HOME, the image's ENV, BERTH_* variables).

/** The kernel's ARG_MAX with an 8 MiB stack limit. */
export const ARG_MAX_BYTES = 2 * 1024 * 1024;
/** Kept free for the environment and arguments added on the way to the task's process. */
export const EXEC_HEADROOM_BYTES = 64 * 1024;
/** Most bytes a task's command and env may take as arguments and environment (strings, NULs and pointers). */
export const MAX_EXEC_BYTES = ARG_MAX_BYTES - EXEC_HEADROOM_BYTES;
/** Longest single argument or `NAME=value` string, in bytes: MAX_ARG_STRLEN less its NUL. */
export const MAX_ARG_BYTES = 32 * 4096 - 1;
const POINTER_BYTES = 8;

/** Bytes one argument or environment string takes on the stack: its UTF-8, a NUL, a pointer. */
export const execStringBytes = (s: string): number => Buffer.byteLength(s) + 1 + POINTER_BYTES;

/** Bytes `command` and `env` take together at exec. */
export function execBytes(command: readonly string[], env: Readonly<Record<string, string>>): number {
  let total = 0;
  for (const arg of command) total += execStringBytes(arg);
  for (const [name, value] of Object.entries(env)) total += execStringBytes(`${name}=${value}`);
  return total;
}

// The engine has a limit of its own: Docker's API server takes at most 1 MiB of request line and headers (Go's
// default MaxHeaderBytes), and the Docker client berth uses sends a container's create options in the URL's query
// as well as in the body, every argument and variable URL-encoded as `Cmd=…&Env=…`. Past that the engine answers
// 431 and the task could only fail. The rest of the create options take a few KiB.

/** Most bytes the command and env may take URL-encoded in the engine's create request. */
export const MAX_ENGINE_REQUEST_BYTES = 1024 * 1024 - 64 * 1024;

/** Bytes `command` and `env` take in the create request's query string (`Cmd=<escaped>&…&Env=<escaped>&…`). */
export function engineRequestBytes(command: readonly string[], env: Readonly<Record<string, string>>): number {
  let total = 0;
  for (const arg of command) total += "&Cmd=".length + querystring.escape(arg).length;
  for (const [name, value] of Object.entries(env)) total += "&Env=".length + querystring.escape(`${name}=${value}`).length;
  return total;
}

/** The most of a command shown in a list entry, as JSON bytes. */
export const COMMAND_PREVIEW_BYTES = 1024;

/**
 * The start of `command`, at most COMMAND_PREVIEW_BYTES when JSON-encoded (the last argument kept is cut and ends
 * with "…"), or null when the whole command fits.
 */
export function previewCommand(command: readonly string[], maxBytes = COMMAND_PREVIEW_BYTES): string[] | null {
  if (Buffer.byteLength(JSON.stringify(command)) <= maxBytes) return null;
  const out: string[] = [];
  let used = 2; // []
  for (const arg of command) {
    const room = maxBytes - used - (out.length > 0 ? 1 : 0) - 2; // a comma, the quotes
    const encoded = Buffer.byteLength(JSON.stringify(arg)) - 2;
    if (encoded <= room) {
      out.push(arg);
      used += encoded + 2 + (out.length > 1 ? 1 : 0);
      continue;
    }
    const cut = cutToJsonBytes(arg, room - 3); // "…" is 3 bytes
    if (cut.length > 0 || out.length === 0) out.push(`${cut}…`);
    break;
  }
  return out;
}

/** The longest prefix of `s` whose JSON-encoded form (without quotes) takes at most `max` bytes. */
function cutToJsonBytes(s: string, max: number): string {
  let used = 0;
  let end = 0;
  for (const ch of s) {
    const bytes = Buffer.byteLength(JSON.stringify(ch)) - 2;
    if (used + bytes > max) break;
    used += bytes;
    end += ch.length;
  }
  return s.slice(0, end);
}
