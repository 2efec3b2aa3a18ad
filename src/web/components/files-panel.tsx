// The task's workspace: a tree of its files (while it runs and after), a viewer for text files, and downloads.
import { useEffect, useState } from "preact/hooks";
import type { FileEntry, TaskView } from "../../contract/types.js";
import { type Api, errorText, saveBlob } from "../api.js";
import { formatBytes, isActive } from "../format.js";

/** Files larger than this are offered as downloads only. */
const MAX_VIEW_BYTES = 1024 * 1024;
/** How often the tree is read again while the task runs. */
const REFRESH_MS = 5000;

interface Dir {
  name: string;
  path: string;
  dirs: Map<string, Dir>;
  files: FileEntry[];
}

type Viewing =
  | { path: string; state: "loading" }
  | { path: string; state: "text"; text: string }
  | { path: string; state: "note"; note: string };

export function FilesPanel({ api, task }: { api: Api; task: TaskView }) {
  const [files, setFiles] = useState<FileEntry[] | null>(null);
  const [truncated, setTruncated] = useState(false);
  const [error, setError] = useState("");
  const [viewing, setViewing] = useState<Viewing | null>(null);
  const active = isActive(task);
  const gone = task.status === "expired";

  const load = () =>
    api.files(task.id).then(
      (r) => {
        setFiles(r.files);
        setTruncated(Boolean(r.truncated));
        setError("");
      },
      (err: unknown) => setError(errorText(err)),
    );
  useEffect(() => {
    if (gone) return;
    void load();
    if (!active) return;
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(t);
  }, [task.id, task.status]);

  const view = async (f: FileEntry) => {
    if (f.size > MAX_VIEW_BYTES) {
      setViewing({ path: f.path, state: "note", note: `${formatBytes(f.size)}: too large to show here. Download it instead.` });
      return;
    }
    setViewing({ path: f.path, state: "loading" });
    try {
      const bytes = new Uint8Array(await (await api.blob(api.fileUrl(task.id, f.path))).arrayBuffer());
      if (bytes.subarray(0, 8192).includes(0)) {
        setViewing({ path: f.path, state: "note", note: "A binary file: download it to open it." });
        return;
      }
      setViewing({ path: f.path, state: "text", text: new TextDecoder().decode(bytes) });
    } catch (err) {
      setViewing({ path: f.path, state: "note", note: errorText(err) });
    }
  };

  const download = async (f: FileEntry) => {
    try {
      saveBlob(await api.blob(api.fileUrl(task.id, f.path)), f.path.split("/").pop() ?? "file");
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <section class="files-panel" aria-labelledby="files-title">
      <div class="panel-head">
        <h2 id="files-title">Files</h2>
        {active ? <span class="muted">live workspace, read every few seconds</span> : null}
        <button type="button" onClick={() => void load()} disabled={gone}>
          Refresh
        </button>
      </div>
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      {gone ? (
        <p class="muted">This task has expired: its workspace was removed.</p>
      ) : files === null ? (
        <p class="muted">{task.status === "queued" ? "The workspace is made when the task starts." : "Loading…"}</p>
      ) : files.length === 0 ? (
        <p class="muted">The workspace is empty.</p>
      ) : (
        <div class="files">
          <ul class="tree" aria-label="Workspace files">
            <DirItems dir={tree(files)} selected={viewing?.path ?? ""} onView={view} onDownload={download} />
          </ul>
          {truncated ? <p class="muted">The listing was cut short: the workspace has more entries.</p> : null}
          {viewing ? (
            <div class="viewer" aria-live="polite">
              <div class="viewer-head">
                <code>{viewing.path}</code>
                <button type="button" class="link" onClick={() => setViewing(null)}>
                  close
                </button>
              </div>
              {viewing.state === "loading" ? (
                <p class="muted">Loading…</p>
              ) : viewing.state === "note" ? (
                <p class="muted">{viewing.note}</p>
              ) : (
                // biome-ignore lint/a11y/noNoninteractiveTabindex: the file scrolls, so keyboard users need to focus it
                <pre class="file-text" tabIndex={0}>
                  {viewing.text}
                </pre>
              )}
            </div>
          ) : null}
        </div>
      )}
    </section>
  );
}

function DirItems(props: { dir: Dir; selected: string; onView: (f: FileEntry) => void; onDownload: (f: FileEntry) => void }) {
  const { dir } = props;
  return (
    <>
      {[...dir.dirs.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((d) => (
          <li key={d.path}>
            <details open={d.path.split("/").length < 2}>
              <summary>
                <span aria-hidden="true">▸ </span>
                {d.name}/
              </summary>
              <ul>
                <DirItems {...props} dir={d} />
              </ul>
            </details>
          </li>
        ))}
      {dir.files
        .sort((a, b) => a.path.localeCompare(b.path))
        .map((f) => {
          const name = f.path.split("/").pop() ?? f.path;
          return (
            <li key={f.path} class={props.selected === f.path ? "file selected" : "file"}>
              {f.type === "symlink" ? (
                <span class="name" title="A symbolic link: never followed">
                  {name} <span class="muted">(link)</span>
                </span>
              ) : (
                <>
                  <button type="button" class="name link" onClick={() => props.onView(f)} title={`View ${f.path}`}>
                    {name}
                  </button>
                  <span class="size">{formatBytes(f.size)}</span>
                  <button type="button" class="link small" onClick={() => props.onDownload(f)} aria-label={`Download ${f.path}`}>
                    download
                  </button>
                </>
              )}
            </li>
          );
        })}
    </>
  );
}

/** The flat listing as a tree of directories. */
function tree(files: readonly FileEntry[]): Dir {
  const root: Dir = { name: "", path: "", dirs: new Map(), files: [] };
  const dirAt = (path: string): Dir => {
    let d = root;
    for (const part of path.split("/")) {
      let child = d.dirs.get(part);
      if (!child) {
        child = { name: part, path: d.path ? `${d.path}/${part}` : part, dirs: new Map(), files: [] };
        d.dirs.set(part, child);
      }
      d = child;
    }
    return d;
  };
  for (const f of files) {
    if (f.type === "dir") dirAt(f.path);
    else {
      const at = f.path.lastIndexOf("/");
      (at === -1 ? root : dirAt(f.path.slice(0, at))).files.push(f);
    }
  }
  return root;
}
