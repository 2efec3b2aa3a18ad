// One task: status and timings, actions (archive, cancel, delete, run again, continue from its workspace), its live
// log, what it changed and its files.
import { useEffect, useState } from "preact/hooks";
import type { TaskView } from "../../contract/types.js";
import { type Api, BerthApiError, errorText, saveBlob } from "../api.js";
import { formatBytes, formatCommand, formatDuration, formatTime, isActive, taskDuration } from "../format.js";
import { type Live, useLive } from "../live.js";
import { go } from "../route.js";
import { Confirm, Labels, StatusBadge } from "./bits.js";
import { ChangesPanel } from "./changes-panel.js";
import { FilesPanel } from "./files-panel.js";
import { LogView } from "./log-view.js";

type Asking = "cancel" | "delete" | null;

/** `admin`: the key is an admin's, which submits nothing (no "Run again" or "New task from this workspace"). */
export function TaskPage({ api, live, id, admin }: { api: Api; live: Live; id: string; admin: boolean }) {
  const [task, setTask] = useState<TaskView | null>(null);
  const [missing, setMissing] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState("");
  const [asking, setAsking] = useState<Asking>(null);
  const [now, setNow] = useState(Date.now());

  const load = () =>
    api.task(id).then(
      (t) => {
        setTask(t);
        setMissing("");
      },
      (err: unknown) => {
        if (err instanceof BerthApiError && err.status === 404) setMissing(err.message);
        else setError(errorText(err));
      },
    );
  useEffect(() => {
    void load();
  }, [id]);
  useLive(live, (e) => {
    if (e.type === "open") void load();
    else if (e.type === "task" && e.task.id === id) setTask(e.task);
    else if (e.type === "deleted" && e.id === id) setMissing(`Task "${id}" was deleted.`);
  });
  const running = task?.status === "running";
  useEffect(() => {
    if (!running) return;
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, [running]);

  if (missing) {
    return (
      <section class="missing">
        <h1>No such task</h1>
        <p>{missing}</p>
        <p>
          <a href="#/">Back to the task list</a>
        </p>
      </section>
    );
  }
  if (!task) return error ? <p class="error">{error}</p> : <p class="muted">Loading…</p>;

  const act = async (what: string, fn: () => Promise<unknown>) => {
    setBusy(what);
    setError("");
    try {
      await fn();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy("");
    }
  };
  const active = isActive(task);

  return (
    <article class="task" aria-labelledby="task-title">
      <header class="task-head">
        <p class="crumbs">
          <a href="#/">Tasks</a> / <span class="mono">{task.id}</span>
        </p>
        <h1 id="task-title">
          <StatusBadge status={task.status} />
          <code class="cmd" title={formatCommand(task.command)}>
            {formatCommand(task.command)}
          </code>
        </h1>
        <div class="actions">
          <button
            type="button"
            class="primary"
            disabled={!task.archive || busy !== ""}
            title={
              task.archive ? `${formatBytes(task.archive.bytes)}, sha256 ${task.archive.sha256}` : "The archive is made when the task ends"
            }
            onClick={() => act("archive", async () => saveBlob(await api.blob(task.links.archive), `${task.workspace}.tar.gz`))}
          >
            {busy === "archive" ? "Downloading…" : "Download archive"}
          </button>
          {active ? (
            <button type="button" class="danger" disabled={busy !== ""} onClick={() => setAsking("cancel")}>
              Cancel
            </button>
          ) : null}
          {admin ? null : (
            <>
              <button type="button" onClick={() => go({ page: "submit", from: "", again: task.id })}>
                Run again
              </button>
              <button
                type="button"
                disabled={active || task.status === "expired"}
                title="A new task that starts from a copy of this task's final workspace"
                onClick={() => go({ page: "submit", from: task.id, again: "" })}
              >
                New task from this workspace
              </button>
            </>
          )}
          <button type="button" class="danger outline" disabled={busy !== ""} onClick={() => setAsking("delete")}>
            Delete
          </button>
        </div>
      </header>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <Details task={task} now={now} />
      <LogView api={api} id={task.id} workspace={task.workspace} />
      <ChangesPanel api={api} task={task} />
      <FilesPanel api={api} task={task} />
      {asking === "cancel" ? (
        <Confirm
          title="Cancel this task?"
          confirm="Cancel task"
          danger
          onClose={() => setAsking(null)}
          onConfirm={() => act("cancel", async () => setTask(await api.cancel(task.id)))}
        >
          <p>
            {task.status === "queued" ? "It will never start." : "It is stopped (SIGTERM, then SIGKILL after a grace period)"} and ends as{" "}
            <strong>canceled</strong>. Its workspace and log are kept.
          </p>
        </Confirm>
      ) : null}
      {asking === "delete" ? (
        <Confirm
          title="Delete this task?"
          confirm="Delete task"
          danger
          onClose={() => setAsking(null)}
          onConfirm={() =>
            act("delete", async () => {
              await api.remove(task.id);
              go({ page: "list", status: "", label: "", cursor: "", tenant: "" });
            })
          }
        >
          <p>{active ? "It is canceled first; then its" : "Its"} workspace, archive, log and record are removed. This cannot be undone.</p>
        </Confirm>
      ) : null}
    </article>
  );
}

function Details({ task: t, now }: { task: TaskView; now: number }) {
  const rows: [string, preact.ComponentChild][] = [
    ["Tenant", t.tenant],
    ["Image", <span class="mono">{t.image}</span>],
    ["Created", formatTime(t.createdAt)],
    ["Started", formatTime(t.startedAt)],
    ["Finished", formatTime(t.finishedAt)],
    ["Duration", formatDuration(taskDuration(t, now))],
    ["Exit code", t.exitCode ?? "—"],
    ["Reason", t.reason ?? "—"],
    ["Timeout", `${t.timeoutSeconds} s`],
    ["Limits", `${t.limits.memoryMb} MB memory, ${t.limits.cpus} CPU, ${t.limits.pids} processes`],
    ["Network", t.network],
    ...(t.caches.length > 0 ? [["Caches", t.caches.map((c) => `/cache/${c}`).join(", ")] as [string, string]] : []),
    [
      "Used",
      t.usage
        ? `${t.usage.cpuSeconds} s CPU${t.usage.peakMemoryBytes === null ? "" : `, ${formatBytes(t.usage.peakMemoryBytes)} peak memory`}`
        : "—",
    ],
    ["Labels", <Labels labels={t.labels} />],
    ["Archive", t.archive ? `${formatBytes(t.archive.bytes)} · sha256 ${t.archive.sha256.slice(0, 16)}…` : "—"],
    ["Expires", formatTime(t.expiresAt)],
  ];
  return (
    <section aria-label="Details">
      {t.message ? (
        <p class={t.status === "succeeded" ? "notice" : "notice warn"}>
          <strong>{t.reason ?? "note"}:</strong> {t.message}
        </p>
      ) : null}
      {t.outputTruncated ? <p class="notice warn">The output passed the server's limit; the rest was dropped (the task went on).</p> : null}
      <dl class="details">
        {rows.map(([k, v]) => (
          <div key={k}>
            <dt>{k}</dt>
            <dd>{v}</dd>
          </div>
        ))}
      </dl>
      {t.archiveSkipped.length > 0 ? (
        <details class="skipped">
          <summary>{t.archiveSkipped.length} entries left out of the archive</summary>
          <ul>
            {t.archiveSkipped.map((s) => (
              <li key={s.path}>
                <code>{s.path}</code>: {s.why}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
    </section>
  );
}
