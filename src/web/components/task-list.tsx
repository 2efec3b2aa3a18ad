// The task list: newest first, filtered by status and label, paged with the API's cursors, updated live.
import { useEffect, useRef, useState } from "preact/hooks";
import { TASK_STATUSES, type TaskView } from "../../contract/types.js";
import { type Api, errorText } from "../api.js";
import { formatAgo, formatBytes, formatCommand, formatDuration, formatTime, taskDuration } from "../format.js";
import { type Live, useLive } from "../live.js";
import { type Route, go, href } from "../route.js";
import { Labels, StatusBadge } from "./bits.js";

const PAGE_SIZE = 50;
type ListRoute = Extract<Route, { page: "list" }>;

/** Cursors of the pages before this one, so "Newer" can step back (kept while the page is open). */
const previous: string[] = [];

/** `tenants`: for an admin key, the tenants to filter by (its list holds every tenant's tasks); null for a tenant. */
export function TaskList({ api, live, route, tenants }: { api: Api; live: Live; route: ListRoute; tenants: readonly string[] | null }) {
  const [tasks, setTasks] = useState<TaskView[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState("");
  const [now, setNow] = useState(Date.now());
  const loading = useRef<AbortController | null>(null);
  const { status, label, cursor, tenant } = route;

  const load = () => {
    loading.current?.abort();
    const controller = new AbortController();
    loading.current = controller;
    api.list({ status, label, cursor, tenant, limit: PAGE_SIZE }, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return;
        setTasks(page.tasks);
        setNext(page.nextCursor);
        setError("");
      },
      (err: unknown) => {
        if (!controller.signal.aborted) setError(errorText(err));
      },
    );
  };
  useEffect(() => {
    load();
    return () => loading.current?.abort();
  }, [status, label, cursor, tenant]);

  // Durations of running tasks and "… ago" move on by themselves.
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);

  useLive(live, (e) => {
    if (e.type === "open") load();
    else if (e.type === "deleted") setTasks((ts) => ts?.filter((t) => t.id !== e.id) ?? ts);
    else if (e.type === "task") setTasks((ts) => (ts ? merge(ts, e.task, route) : ts));
  });

  const filter = (changes: Partial<ListRoute>) => {
    previous.length = 0;
    go({ ...route, ...changes, cursor: "" });
  };

  return (
    <section aria-labelledby="list-title">
      <div class="toolbar">
        <h1 id="list-title">Tasks</h1>
        {tenants ? (
          <label>
            Tenant{" "}
            <select value={tenant} onChange={(e) => filter({ tenant: (e.currentTarget as HTMLSelectElement).value })}>
              <option value="">all</option>
              {tenants.map((t) => (
                <option value={t} key={t}>
                  {t}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <label>
          Status{" "}
          <select value={status} onChange={(e) => filter({ status: (e.currentTarget as HTMLSelectElement).value })}>
            <option value="">all</option>
            {TASK_STATUSES.map((s) => (
              <option value={s} key={s}>
                {s.replace("_", " ")}
              </option>
            ))}
          </select>
        </label>
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            const value = (new FormData(e.currentTarget as HTMLFormElement).get("label") as string).trim();
            filter({ label: value });
          }}
        >
          <label>
            Label <input name="label" placeholder="key:value" defaultValue={label} size={16} />
          </label>
          <button type="submit">Filter</button>
          {label ? (
            <button type="button" class="link" onClick={() => filter({ label: "" })}>
              clear
            </button>
          ) : null}
        </form>
        <form
          class="inline find"
          onSubmit={(e) => {
            e.preventDefault();
            const id = (new FormData(e.currentTarget as HTMLFormElement).get("id") as string).trim();
            if (id) go({ page: "task", id });
          }}
        >
          <label>
            Find <input name="id" placeholder="task id" size={22} spellcheck={false} />
          </label>
          <button type="submit">Open</button>
        </form>
        {tenants ? null : (
          <a class="button primary" href="#/new">
            New task
          </a>
        )}
      </div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {tasks === null ? (
        <p class="muted">Loading…</p>
      ) : tasks.length === 0 ? (
        <p class="empty">
          {status || label || tenant ? "No tasks match these filters." : "No tasks yet."} {tenants ? null : <a href="#/new">Submit one</a>}
        </p>
      ) : (
        <div class="table-wrap">
          <table class="tasks">
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Task</th>
                {tenants ? <th scope="col">Tenant</th> : null}
                <th scope="col">Command</th>
                <th scope="col" class="wide">
                  Image
                </th>
                <th scope="col" class="wide">
                  Labels
                </th>
                <th scope="col">Created</th>
                <th scope="col" class="num">
                  Duration
                </th>
                <th scope="col" class="num">
                  Exit
                </th>
                <th scope="col" class="num wide">
                  Archive
                </th>
              </tr>
            </thead>
            <tbody>
              {tasks.map((t) => (
                <Row key={t.id} task={t} now={now} showTenant={tenants !== null} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav class="pager" aria-label="Pages">
        <a
          class="button"
          href={href({ ...route, cursor: "" })}
          aria-disabled={cursor ? undefined : "true"}
          onClick={() => (previous.length = 0)}
        >
          Newest
        </a>
        <button
          type="button"
          disabled={!cursor}
          onClick={() => {
            go({ ...route, cursor: previous.pop() ?? "" });
          }}
        >
          ← Newer
        </button>
        <button
          type="button"
          disabled={!next}
          onClick={() => {
            previous.push(cursor);
            go({ ...route, cursor: next ?? "" });
          }}
        >
          Older →
        </button>
      </nav>
    </section>
  );
}

function Row({ task: t, now, showTenant }: { task: TaskView; now: number; showTenant: boolean }) {
  const command = formatCommand(t.command);
  return (
    <tr
      class="row"
      onClick={(e) => {
        // The id cell holds the real link (keyboard, middle click); anywhere else on the row opens the task too.
        if (!(e.target as HTMLElement).closest("a")) go({ page: "task", id: t.id });
      }}
    >
      <td>
        <StatusBadge status={t.status} />
      </td>
      <td class="id">
        <a href={href({ page: "task", id: t.id })} title={t.id}>
          {t.id.slice(0, 10)}
        </a>
      </td>
      {showTenant ? <td class="tenant">{t.tenant}</td> : null}
      <td class="command" title={command}>
        <code>{command}</code>
      </td>
      <td class="image wide" title={t.image}>
        {t.image}
      </td>
      <td class="wide labels-cell">
        <Labels labels={t.labels} />
      </td>
      <td title={formatTime(t.createdAt)}>{formatAgo(t.createdAt, now)}</td>
      <td class="num">{formatDuration(taskDuration(t, now))}</td>
      <td class="num">{t.exitCode ?? "—"}</td>
      <td class="num wide">{t.archive ? formatBytes(t.archive.bytes) : "—"}</td>
    </tr>
  );
}

/** A changed or new task into the shown page: replaced in place, or added on top of the first page when it fits. */
function merge(tasks: TaskView[], task: TaskView, route: ListRoute): TaskView[] {
  const fits =
    (!route.status || task.status === route.status) &&
    (!route.label || hasLabel(task, route.label)) &&
    (!route.tenant || task.tenant === route.tenant);
  const at = tasks.findIndex((t) => t.id === task.id);
  if (at !== -1) return fits ? tasks.map((t, i) => (i === at ? task : t)) : tasks.filter((_, i) => i !== at);
  if (!fits || route.cursor) return tasks;
  const newest = tasks[0];
  if (newest && Date.parse(task.createdAt) < Date.parse(newest.createdAt)) return tasks;
  return [task, ...tasks].slice(0, PAGE_SIZE);
}

function hasLabel(task: TaskView, filter: string): boolean {
  const at = filter.indexOf(":");
  return at > 0 && task.labels[filter.slice(0, at)] === filter.slice(at + 1);
}
