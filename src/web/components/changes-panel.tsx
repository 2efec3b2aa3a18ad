// What a finished task changed in its workspace: the summary (the task view's `changes`), the change list (paged with
// its cursor), the diff of one path on demand, and the change-only archive. Names and contents are shown as text.
import { useEffect, useRef, useState } from "preact/hooks";
import type { ChangeEntry, ChangeKind, ChangeSummary, TaskView } from "../../contract/types.js";
import { type Api, BerthApiError, errorText, saveBlob } from "../api.js";
import { diffLines } from "../diff-lines.js";
import { formatBytes, isActive } from "../format.js";

const KIND: Record<ChangeKind, { mark: string; label: string }> = {
  added: { mark: "A", label: "added" },
  modified: { mark: "M", label: "modified" },
  deleted: { mark: "D", label: "deleted" },
  type_changed: { mark: "T", label: "type changed" },
};

/** Diff lines shown at most (a diff of one path can run to megabytes; the tab should stay responsive). */
const MAX_DIFF_LINES = 5000;

type Diff =
  | { path: string; state: "loading" }
  | { path: string; state: "text"; text: string; truncated: boolean }
  | { path: string; state: "note"; note: string };

export function ChangesPanel({ api, task }: { api: Api; task: TaskView }) {
  if (isActive(task)) return null;
  return (
    <section class="changes-panel" aria-labelledby="changes-title">
      <div class="panel-head">
        <h2 id="changes-title">Changes</h2>
        {task.changes ? <Download api={api} task={task} /> : null}
      </div>
      {task.status === "expired" ? (
        <p class="muted">This task has expired: what it changed is no longer stored.</p>
      ) : task.changes ? (
        <Changes api={api} task={task} summary={task.changes} />
      ) : (
        <p class="muted">What this task changed was not recorded (it was not archived, or its starting workspace was too large).</p>
      )}
    </section>
  );
}

function Download({ api, task }: { api: Api; task: TaskView }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const download = async () => {
    setBusy(true);
    setError("");
    try {
      saveBlob(await api.blob(`${task.links.archive}?changes=only`), `${task.workspace}.changes.tar.gz`);
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button
        type="button"
        disabled={busy || task.status === "expired"}
        title="A tar.gz of the added and modified entries, with .berth-deleted listing the paths to remove"
        onClick={() => void download()}
      >
        {busy ? "Downloading…" : "Download changes"}
      </button>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
    </>
  );
}

function Changes({ api, task, summary }: { api: Api; task: TaskView; summary: ChangeSummary }) {
  const [entries, setEntries] = useState<ChangeEntry[]>([]);
  const [next, setNext] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState("");
  const [diff, setDiff] = useState<Diff | null>(null);
  const abort = useRef<AbortController | null>(null);
  const asked = useRef("");

  const load = (cursor: string | null) => {
    abort.current?.abort();
    const ac = new AbortController();
    abort.current = ac;
    setLoading(true);
    api.changes(task.id, cursor, ac.signal).then(
      (page) => {
        setEntries((had) => (cursor ? [...had, ...page.changes] : page.changes));
        setNext(page.nextCursor);
        setError("");
        setLoading(false);
      },
      (err: unknown) => {
        if (ac.signal.aborted) return;
        setError(errorText(err));
        setLoading(false);
      },
    );
  };
  useEffect(() => {
    setEntries([]);
    setDiff(null);
    load(null);
    return () => abort.current?.abort();
  }, [task.id]);

  const show = async (path: string) => {
    asked.current = path;
    setDiff({ path, state: "loading" });
    try {
      const d = await api.diff(task.id, path);
      if (asked.current === path) setDiff({ path, state: "text", ...d });
    } catch (err) {
      const note = err instanceof BerthApiError && err.status === 429 ? `${err.message} Try again in a moment.` : errorText(err);
      if (asked.current === path) setDiff({ path, state: "note", note });
    }
  };
  const close = () => {
    asked.current = "";
    setDiff(null);
  };

  const total = summary.added + summary.modified + summary.deleted + summary.typeChanged;
  return (
    <>
      <p class="change-summary">
        <span class="c-added">{summary.added} added</span>
        <span class="c-modified">{summary.modified} modified</span>
        <span class="c-deleted">{summary.deleted} deleted</span>
        {summary.typeChanged > 0 ? <span class="c-type_changed">{summary.typeChanged} type changed</span> : null}
        <span class="bytes">
          +{formatBytes(summary.bytesAdded)} −{formatBytes(summary.bytesRemoved)}
        </span>
      </p>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {total === 0 ? (
        <p class="muted">The task changed nothing in its workspace.</p>
      ) : (
        <div class="files">
          <div class="change-list">
            <ul class="changes" aria-label="Changed paths">
              {entries.map((c) => (
                <ChangeItem key={c.path} c={c} selected={diff?.path === c.path} onShow={show} />
              ))}
            </ul>
            {loading ? <p class="muted">Loading…</p> : null}
            {next && !loading ? (
              <button type="button" onClick={() => load(next)}>
                Show more
              </button>
            ) : null}
          </div>
          {diff ? (
            <div class="viewer" aria-live="polite">
              <div class="viewer-head">
                <code>{diff.path}</code>
                <button type="button" class="link" onClick={close}>
                  close
                </button>
              </div>
              {diff.state === "loading" ? (
                <p class="muted">Loading…</p>
              ) : diff.state === "note" ? (
                <p class="muted">{diff.note}</p>
              ) : diff.text === "" ? (
                <p class="muted">No textual difference (only the mode or the type changed).</p>
              ) : (
                <DiffText text={diff.text} truncated={diff.truncated} />
              )}
            </div>
          ) : null}
        </div>
      )}
    </>
  );
}

function ChangeItem({ c, selected, onShow }: { c: ChangeEntry; selected: boolean; onShow: (path: string) => void }) {
  const kind = KIND[c.change];
  const type = c.previousType && c.previousType !== c.type ? `${c.previousType} → ${c.type}` : c.type;
  const sizes =
    c.change === "added"
      ? formatBytes(c.size)
      : c.change === "deleted"
        ? formatBytes(c.previousSize)
        : c.previousSize === c.size
          ? formatBytes(c.size)
          : `${formatBytes(c.previousSize)} → ${formatBytes(c.size)}`;
  const diffable = c.type === "file" || c.type === "symlink" || c.previousType === "file" || c.previousType === "symlink";
  return (
    <li class={`change c-${c.change}${selected ? " selected" : ""}`} data-change={c.change}>
      <span class="kind" title={kind.label}>
        <span aria-hidden="true">{kind.mark}</span>
        <span class="sr-only">{kind.label}</span>
      </span>
      {diffable ? (
        <button type="button" class="path link" onClick={() => onShow(c.path)} title={`Show the diff of ${c.path}`}>
          {c.path}
        </button>
      ) : (
        <span class="path">{c.path}</span>
      )}
      <span class="type">{type}</span>
      <span class="size">{sizes}</span>
    </li>
  );
}

function DiffText({ text, truncated }: { text: string; truncated: boolean }) {
  const lines = diffLines(text);
  return (
    <>
      {/* biome-ignore lint/a11y/noNoninteractiveTabindex: the diff scrolls, so keyboard users need to focus it */}
      <pre class="diff" tabIndex={0}>
        {lines.slice(0, MAX_DIFF_LINES).map((l, i) => (
          <span key={i} class={`dl d-${l.kind}`}>
            {l.text}
            {"\n"}
          </span>
        ))}
      </pre>
      {lines.length > MAX_DIFF_LINES ? (
        <p class="muted">
          The first {MAX_DIFF_LINES.toLocaleString("en")} of {lines.length.toLocaleString("en")} lines; download the files to see the rest.
        </p>
      ) : null}
      {truncated ? <p class="muted">The diff was cut short by the server's bound.</p> : null}
    </>
  );
}
