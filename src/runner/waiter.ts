// The waiter a warm-pool container runs until a task claims it: the image's /bin/sh, under the container's init,
// reading one shell script from stdin (the task's environment and an `exec` of its command) and running it. The
// `exec` replaces the shell with the task's process, so nothing of the waiter is left once the task runs, and
// the task's stdin is what is left of the waiter's: at its end (berth closes it after the script).
//
// The script must end with the container's nonce (random, made when the container is created, so no task input
// can contain it): a script cut short (a dropped connection) never runs. Pure, so it is unit-tested.

/** Exit code of a waiter that got no complete script (it ran nothing). */
export const WAITER_INCOMPLETE_EXIT = 125;

/** Largest script a warm start sends; a larger command and environment take the cold path. */
export const MAX_WARM_INPUT_BYTES = 64 * 1024;

/**
 * Names the shell keeps for itself (dash refuses a non-number OPTIND; bash makes the rest read-only): a task
 * setting one takes the cold path, where the engine sets them without a shell.
 */
const SHELL_RESERVED = new Set(["OPTIND", "PPID", "UID", "EUID", "SHELLOPTS", "BASHOPTS", "BASH_VERSINFO", "GROUPS"]);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The waiter, POSIX sh with built-ins only (so any image with /bin/sh can be pooled): read all of stdin line by
 * line (`read -r` keeps backslashes, `IFS=` keeps blanks; the last line may lack a newline), check the nonce at
 * its end, then run what comes before it.
 */
const WAITER_SCRIPT = [
  "n=$1; s=",
  'while IFS= read -r l; do s="$s$l',
  '"; done',
  's="$s$l"',
  `case $s in *"$n") ;; *) exit ${WAITER_INCOMPLETE_EXIT} ;; esac`,
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion, not a template
  'eval "${s%"$n"}"',
].join("\n");

/** The command a pooled container is created with. `nonce`: hex, made for this container. */
export function waiterCommand(nonce: string): string[] {
  if (!/^[0-9a-f]{16,}$/.test(nonce)) throw new Error("the waiter's nonce must be at least 16 hex digits");
  return ["/bin/sh", "-c", WAITER_SCRIPT, "berth-waiter", nonce];
}

/** Single-quoted for sh: every byte as it is, a quote as '\''. */
const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * What the waiter reads to become the task: its environment on top of the image's (as the engine would set it),
 * then `exec` of its command. Null when the task cannot be started this way and takes the cold path: a NUL
 * anywhere, a command starting with "-" (which a shell's `exec` may read as an option), a name the shell keeps,
 * or more than {@link MAX_WARM_INPUT_BYTES}.
 */
export function warmStartInput(opts: {
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly nonce: string;
  /** Whether the container's own environment (the image's) sets PWD: the shell sets it otherwise. */
  readonly imageSetsPwd: boolean;
}): Buffer | null {
  const { command, env } = opts;
  const [program] = command;
  if (program === undefined || program === "" || program.startsWith("-")) return null;
  const names = Object.keys(env);
  if (names.some((k) => !ENV_NAME.test(k) || SHELL_RESERVED.has(k))) return null;
  if ([...command, ...Object.values(env)].some((s) => s.includes("\0"))) return null;
  const lines: string[] = [];
  // The shell exports PWD for its child; the engine does not, unless the image or the task sets it.
  if (!opts.imageSetsPwd && !("PWD" in env)) lines.push("unset PWD");
  for (const k of names) lines.push(`export ${k}=${quote(env[k] as string)}`);
  lines.push(`exec ${command.map(quote).join(" ")}`);
  const input = Buffer.from(`${lines.join("\n")}\n${opts.nonce}`, "utf8");
  return input.length > MAX_WARM_INPUT_BYTES ? null : input;
}
