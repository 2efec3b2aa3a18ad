// What GNU tar and find say on stderr while archiving, sorted into per-file warnings berth tolerates (the file is
// reported as skipped) and anything else (which fails the archive). The children run with LC_ALL=C, so the
// messages are in English and names are quoted byte-wise.
import type { SkippedPath } from "./packing.js";

/**
 * Sorts tar/find stderr lines into per-file warnings we tolerate (recorded as skipped) and anything else
 * (`unknown`, which fails the archive). Names are as the tool quoted them.
 */
export function classifyStderr(stderr: string): { skipped: SkippedPath[]; unknown: string[] } {
  const skipped: SkippedPath[] = [];
  const unknown: string[] = [];
  for (const line of stderr.split("\n")) {
    if (line === "" || line === "tar: Exiting with failure status due to previous errors") continue;
    // Greedy (.+) so a name containing ": " is kept whole; the tail is anchored to the end.
    const m =
      /^tar: (.+): ((?:Cannot open|Cannot stat|Cannot readlink|Cannot savedir): [^:]+)$/.exec(line) ??
      /^tar: (.+): (File removed before we read it|file changed as we read it)$/.exec(line) ??
      /^tar: (.+): (File shrank by \d+ bytes; padding with zeros|Read error at byte \d+, while reading \d+ bytes: [^:]+)$/.exec(line) ??
      /^find: ['‘](.+)['’]: (Permission denied|No such file or directory)$/.exec(line);
    // find names start with "./" (tar's come from find's %P list and do not).
    if (m?.[1] !== undefined && m[2] !== undefined) skipped.push({ path: m[1].replace(/^\.\//, ""), why: `unreadable: ${m[2]}` });
    else unknown.push(line);
  }
  return { skipped, unknown };
}
