// The task view is built in domain/view.ts (the API, the webhooks and the submit queue show the same thing); list
// entries, of bounded size, are made here.
import type { TaskView } from "../contract/types.js";
import { toView } from "../domain/view.js";
import type { TaskSummary } from "../store/task-store.js";

export { toView };

/** Record fields stored longer than this are left out of list entries (labels excepted: at most ~10 KiB). */
export const LIST_FIELD_MAX_BYTES = 4096;

/**
 * A list entry: the view of a record read without its large fields. A long command shows its start
 * (`commandTruncated`); any other field left out is empty and named in `omitted`.
 */
export function toListView(s: TaskSummary): TaskView {
  const left = new Set(s.leftOut);
  const view = toView({
    ...s,
    command: left.has("command") ? (s.commandPreview ?? []) : s.command,
    message: left.has("message") ? null : s.message,
    archiveSkipped: left.has("archiveSkipped") ? [] : s.archiveSkipped,
  });
  view.commandTruncated = left.has("command");
  const omitted = [...left].filter((f) => f !== "command" && f !== "commandPreview");
  if (omitted.length > 0) view.omitted = omitted;
  return view;
}
