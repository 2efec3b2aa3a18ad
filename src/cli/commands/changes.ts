// What a task changed, on the command line: `berth changes ID` (the change list and its summary) and
// `berth diff ID [PATH]` (the unified diff, coloured on a terminal, plain when piped).
import type { Command } from "commander";
import { Option } from "commander";
import type { ChangeEntry, ChangeSummary } from "../../client/index.js";
import { clientCommand, clientFromEnv, withHint } from "./client.js";

const LETTER: Record<ChangeEntry["change"], string> = { added: "A", modified: "M", deleted: "D", type_changed: "T" };

export function registerChangeCommands(program: Command): void {
  const command = (name: string, description: string) => clientCommand(program, name, description);

  command("changes", "list what a finished task added, modified, deleted or changed the type of in its workspace")
    .argument("<id>")
    .option("--json", "print the change list and summary as JSON")
    .action(
      withHint(async (id: string, o: { json?: boolean }) => {
        const client = clientFromEnv();
        const first = await client.changes(id);
        const changes = [...first.changes];
        for (let cursor = first.nextCursor; cursor; ) {
          const page = await client.changes(id, { cursor });
          changes.push(...page.changes);
          cursor = page.nextCursor;
        }
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ changes, summary: first.summary }, null, 2)}\n`);
          return;
        }
        process.stdout.write(changes.map(formatChange).join(""));
        process.stdout.write(`${formatSummary(first.summary)}\n`);
      }),
    );

  command("diff", "print the unified diff of what a finished task changed (one file with PATH)")
    .argument("<id>")
    .argument("[path]", "a workspace path: only its diff")
    .addOption(new Option("--color <when>", "colour the diff").choices(["auto", "always", "never"]).default("auto"))
    .action(
      withHint(async (id: string, path: string | undefined, o: { color: "auto" | "always" | "never" }) => {
        const { text, truncated } = await clientFromEnv().diff(id, path === undefined ? {} : { path });
        const colour = o.color === "always" || (o.color === "auto" && process.stdout.isTTY === true);
        process.stdout.write(colour ? colourDiff(text) : text);
        if (truncated) process.stderr.write("berth: the diff was cut at the server's size bound; name one file to see it whole\n");
      }),
    );
}

/** One change as a line: a letter (A, M, D, T), the path (quoted when it holds a control character), the sizes. */
export function formatChange(c: ChangeEntry): string {
  const sizes =
    c.change === "added"
      ? `${c.size} bytes`
      : c.change === "deleted"
        ? `was ${c.previousSize} bytes`
        : c.change === "type_changed"
          ? `${c.previousType ?? "?"} → ${c.type}`
          : `${c.previousSize} → ${c.size} bytes`;
  const what = c.change === "type_changed" ? sizes : `${c.type}, ${sizes}`;
  return `${LETTER[c.change]}  ${quoteName(c.path)}  (${what})\n`;
}

export function formatSummary(s: ChangeSummary): string {
  return `${s.added} added, ${s.modified} modified, ${s.deleted} deleted, ${s.typeChanged} type changed; +${s.bytesAdded} -${s.bytesRemoved} bytes`;
}

/** A name that holds a newline or another control character, as a JSON string: it then takes exactly one line. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is looked for
const quoteName = (p: string): string => (/[\u0000-\u001f\u007f"\\]/.test(p) ? JSON.stringify(p) : p);

/** ANSI colours as git uses them: headers bold, hunk lines cyan, removals red, additions green. */
function colourDiff(text: string): string {
  return text
    .split("\n")
    .map((l) => {
      if (/^(diff --git|index |--- |\+\+\+ |new file mode|deleted file mode|old mode|new mode)/.test(l)) return `\x1b[1m${l}\x1b[0m`;
      if (l.startsWith("@@")) return `\x1b[36m${l}\x1b[0m`;
      if (l.startsWith("+")) return `\x1b[32m${l}\x1b[0m`;
      if (l.startsWith("-")) return `\x1b[31m${l}\x1b[0m`;
      return l;
    })
    .join("\n");
}
