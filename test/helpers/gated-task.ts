// A task that runs until its test lets it finish, by creating a file `finish` in its workspace.
import { access, writeFile } from "node:fs/promises";
import path from "node:path";
import type { TaskView } from "../../src/contract/types.js";
import type { Harness } from "./harness.js";
import { waitFor } from "./wait-for.js";

/** Submits it (with `headers`, and `extra` fields of the submission) and returns once it runs. */
export async function startGatedTask(
  h: Harness,
  headers: Record<string, string>,
  extra: Record<string, unknown> = {},
): Promise<{ task: TaskView; finish: () => Promise<void> }> {
  const task = await h.submit({ command: ["sh", "-c", "touch running; while [ ! -e finish ]; do sleep 0.05; done"], ...extra }, headers);
  const dir = path.join(h.deps.config.dirs.workspaces, task.workspace);
  await waitFor(
    `task ${task.id} to run`,
    () =>
      access(path.join(dir, "running")).then(
        () => true,
        () => false,
      ),
    (running) => running,
    { timeoutMs: 60_000 },
  );
  return { task, finish: () => writeFile(path.join(dir, "finish"), "") };
}
