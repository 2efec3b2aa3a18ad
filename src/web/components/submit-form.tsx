// Submitting a task: command, image (from the server's allowed list), env, files, timeout, labels and limits; also
// "Run again" (filled in from an earlier task) and "New task from this workspace" (fromTask).
import { useEffect, useState } from "preact/hooks";
import type { ServerInfo, SubmitTaskRequest, TaskView } from "../../contract/types.js";
import { type Api, errorText } from "../api.js";
import { formatBytes } from "../format.js";
import { go } from "../route.js";

interface Upload {
  path: string;
  content: string;
  bytes: number;
}

interface Fields {
  mode: "shell" | "args";
  command: string;
  image: string;
  env: string;
  timeout: string;
  labels: string;
  memoryMb: string;
  cpus: string;
  pids: string;
  network: "none" | "bridge";
}

const SHELLS = ["sh", "bash"];

/** An earlier task's spec as form fields (env and files are never returned by the API, so they start empty). */
function fieldsFrom(t: TaskView | null, info: ServerInfo): Fields {
  const shell = t && t.command.length === 3 && SHELLS.includes(t.command[0] as string) && t.command[1] === "-c";
  return {
    mode: t && !shell ? "args" : "shell",
    command: t ? (shell ? (t.command[2] as string) : JSON.stringify(t.command)) : "",
    image: t?.image ?? info.images.default,
    env: "",
    timeout: t ? String(t.timeoutSeconds) : "",
    labels: t
      ? Object.entries(t.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join("\n")
      : "",
    memoryMb: t ? String(t.limits.memoryMb) : "",
    cpus: t ? String(t.limits.cpus) : "",
    pids: t ? String(t.limits.pids) : "",
    network: t?.network ?? "none",
  };
}

export function SubmitForm({ api, info, from, again }: { api: Api; info: ServerInfo; from: string; again: string }) {
  const [fields, setFields] = useState<Fields>(() => fieldsFrom(null, info));
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const [source, setSource] = useState<TaskView | null>(null);

  useEffect(() => {
    if (!again) return;
    api.task(again).then(
      (t) => {
        setSource(t);
        setFields(fieldsFrom(t, info));
      },
      (err: unknown) => setError(errorText(err)),
    );
  }, [again]);

  const set = (k: keyof Fields) => (e: Event) => setFields((f) => ({ ...f, [k]: (e.currentTarget as HTMLInputElement).value }));
  const concreteImages = info.images.allowed.filter((p) => !p.includes("*"));
  const wildcard = info.images.allowed.some((p) => p.includes("*"));
  const images = [...new Set([info.images.default, ...concreteImages, fields.image].filter(Boolean))];

  const addFiles = async (list: FileList | null) => {
    setError("");
    const added: Upload[] = [];
    for (const file of [...(list ?? [])]) {
      try {
        const content = new TextDecoder("utf-8", { fatal: true }).decode(await file.arrayBuffer());
        added.push({ path: file.name, content, bytes: file.size });
      } catch {
        setError(`"${file.name}" is not UTF-8 text; the API takes files as text (put binary inputs in an earlier task's workspace).`);
      }
    }
    setUploads((u) => [...u, ...added]);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setError("");
    let body: SubmitTaskRequest;
    try {
      body = buildBody(fields, uploads, from, info);
    } catch (err) {
      setError(errorText(err));
      return;
    }
    setBusy(true);
    try {
      const task = await api.submit(body);
      go({ page: "task", id: task.id });
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
    }
  };

  return (
    <section class="submit" aria-labelledby="submit-title">
      <h1 id="submit-title">{again ? "Run again" : from ? "New task from a workspace" : "New task"}</h1>
      {from ? (
        <p class="notice">
          Starts from a copy of the final workspace of task <a href={`#/tasks/${from}`}>{from}</a>.
        </p>
      ) : null}
      {again ? (
        <p class="notice">
          Filled in from task <a href={`#/tasks/${again}`}>{again}</a>
          {source ? "" : " (loading…)"}. Environment variables and uploaded files are never returned by the API (they may hold secrets): add
          them again if the task needs them.
        </p>
      ) : null}
      <form onSubmit={submit} class="form">
        <fieldset class="command-mode">
          <legend>Command</legend>
          <label>
            <input type="radio" name="mode" value="shell" checked={fields.mode === "shell"} onChange={set("mode")} /> Shell script (
            <code>sh -c</code>)
          </label>
          <label>
            <input type="radio" name="mode" value="args" checked={fields.mode === "args"} onChange={set("mode")} /> Arguments (JSON array)
          </label>
          <textarea
            aria-label="Command"
            id="command"
            rows={5}
            required
            spellcheck={false}
            placeholder={fields.mode === "shell" ? "echo hello > out.txt; ls -l" : '["python3", "-c", "print(42)"]'}
            value={fields.command}
            onInput={set("command")}
          />
        </fieldset>
        <div class="grid">
          <label>
            Image
            <select value={fields.image} onChange={set("image")}>
              {images.map((i) => (
                <option value={i} key={i}>
                  {i}
                </option>
              ))}
            </select>
            {wildcard ? (
              <input
                aria-label="Other image"
                placeholder={`other: ${info.images.allowed.filter((p) => p.includes("*")).join(", ")}`}
                onChange={(e) =>
                  setFields((f) => ({ ...f, image: (e.currentTarget as HTMLInputElement).value.trim() || info.images.default }))
                }
              />
            ) : null}
          </label>
          <label>
            Timeout (seconds)
            <input
              type="number"
              min={1}
              max={info.timeoutSeconds.max}
              placeholder={String(info.timeoutSeconds.default)}
              value={fields.timeout}
              onInput={set("timeout")}
            />
          </label>
        </div>
        <div class="grid">
          <label>
            Environment <span class="hint">NAME=value, one per line</span>
            <textarea rows={4} spellcheck={false} autocomplete="off" value={fields.env} onInput={set("env")} />
          </label>
          <label>
            Labels <span class="hint">key=value, one per line</span>
            <textarea rows={4} spellcheck={false} value={fields.labels} onInput={set("labels")} />
          </label>
        </div>
        <fieldset>
          <legend>Files</legend>
          <input type="file" multiple aria-label="Add files" onChange={(e) => void addFiles((e.currentTarget as HTMLInputElement).files)} />
          {uploads.length > 0 ? (
            <ul class="uploads">
              {uploads.map((u, i) => (
                <li key={`${i}:${u.path}`}>
                  <input
                    aria-label={`Path in the workspace for file ${i + 1}`}
                    value={u.path}
                    onInput={(e) => {
                      const path = (e.currentTarget as HTMLInputElement).value;
                      setUploads((all) => all.map((x, j) => (j === i ? { ...x, path } : x)));
                    }}
                  />
                  <span class="muted">{formatBytes(u.bytes)}</span>
                  <button type="button" class="link" onClick={() => setUploads((all) => all.filter((_, j) => j !== i))}>
                    remove
                  </button>
                </li>
              ))}
            </ul>
          ) : (
            <p class="hint">Text files, written into the workspace before the task starts (the path may include folders).</p>
          )}
        </fieldset>
        <details class="advanced" open={Boolean(again)}>
          <summary>Limits and network</summary>
          <div class="grid">
            <label>
              Memory (MB)
              <input
                type="number"
                min={16}
                max={info.limits.max.memoryMb}
                placeholder={String(info.limits.default.memoryMb)}
                value={fields.memoryMb}
                onInput={set("memoryMb")}
              />
            </label>
            <label>
              CPUs
              <input
                type="number"
                min={0.01}
                step={0.01}
                max={info.limits.max.cpus}
                placeholder={String(info.limits.default.cpus)}
                value={fields.cpus}
                onInput={set("cpus")}
              />
            </label>
            <label>
              Processes
              <input
                type="number"
                min={8}
                max={info.limits.max.pids}
                placeholder={String(info.limits.default.pids)}
                value={fields.pids}
                onInput={set("pids")}
              />
            </label>
            <label>
              Network
              <select value={fields.network} onChange={set("network")} disabled={!info.networkBridgeAllowed}>
                <option value="none">none</option>
                <option value="bridge">bridge</option>
              </select>
            </label>
          </div>
        </details>
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Submitting…" : "Submit task"}
          </button>
          <a href="#/" class="button">
            Cancel
          </a>
        </div>
      </form>
    </section>
  );
}

/** The form as a `POST /v1/tasks` body; throws an Error naming the field that cannot be read. */
export function buildBody(f: Fields, uploads: readonly Upload[], fromTask: string, info: ServerInfo): SubmitTaskRequest {
  let command: string[];
  if (f.mode === "shell") {
    if (!f.command.trim()) throw new Error("Enter a command.");
    command = ["sh", "-c", f.command];
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(f.command);
    } catch {
      throw new Error('Arguments must be a JSON array of strings, like ["python3", "-c", "print(42)"].');
    }
    if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((a) => typeof a === "string")) {
      throw new Error("Arguments must be a non-empty JSON array of strings.");
    }
    command = parsed;
  }
  const body: SubmitTaskRequest = { command };
  if (f.image && f.image !== info.images.default) body.image = f.image;
  const env = pairs(f.env, "=", "Environment");
  if (Object.keys(env).length > 0) body.env = env;
  const labels = pairs(f.labels, "=", "Labels");
  if (Object.keys(labels).length > 0) body.labels = labels;
  if (uploads.length > 0) {
    body.files = {};
    for (const u of uploads) {
      const path = u.path.trim();
      if (!path) throw new Error("Every file needs a path in the workspace.");
      if (path in body.files) throw new Error(`Two files would be written to "${path}".`);
      body.files[path] = u.content;
    }
  }
  const num = (v: string, name: string) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n)) throw new Error(`${name} must be a number.`);
    return n;
  };
  if (f.timeout.trim()) body.timeoutSeconds = num(f.timeout, "Timeout");
  const limits: NonNullable<SubmitTaskRequest["limits"]> = {};
  if (f.memoryMb.trim()) limits.memoryMb = num(f.memoryMb, "Memory");
  if (f.cpus.trim()) limits.cpus = num(f.cpus, "CPUs");
  if (f.pids.trim()) limits.pids = num(f.pids, "Processes");
  if (Object.keys(limits).length > 0) body.limits = limits;
  if (f.network !== "none") body.network = f.network;
  if (fromTask) body.fromTask = fromTask;
  return body;
}

/** `NAME=value` lines → a record; blank lines are skipped, a line without the separator is an error naming it. */
function pairs(text: string, sep: string, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/\r$/, "");
    if (!line.trim()) return;
    const at = line.indexOf(sep);
    if (at < 1) throw new Error(`${what}, line ${i + 1}: write it as name${sep}value.`);
    out[line.slice(0, at).trim()] = line.slice(at + 1);
  });
  return out;
}
