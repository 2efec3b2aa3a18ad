// A task's live log. Events come from the SDK's follower (resumes after a dropped connection with Last-Event-ID, so
// no line is lost or repeated); the log model turns them into lines; this view draws only what changed, once per
// animation frame, and every piece of text goes in as a text node. It follows the end until the reader scrolls up.
import { useEffect, useRef, useState } from "preact/hooks";
import type { EndEvent } from "../../contract/types.js";
import { type Api, errorText, saveBlob } from "../api.js";
import { type LogLine, LogModel } from "../log-model.js";

/** Lines kept on the page; a longer log shows its tail and offers the whole as a download. */
const MAX_LINES = 2000;
/** Longest run of log handling before the page gets the thread back. */
const WORK_SLICE_MS = 30;
/** Shortest time between two drawings of new lines. */
const MIN_DRAW_MS = 100;

type Connection =
  | { state: "connecting" }
  | { state: "live" }
  | { state: "reconnecting"; attempt: number }
  | { state: "ended"; end: EndEvent };

export function LogView({ api, id, workspace }: { api: Api; id: string; workspace: string }) {
  const box = useRef<HTMLDivElement>(null);
  const [connection, setConnection] = useState<Connection>({ state: "connecting" });
  const [error, setError] = useState("");
  const [following, setFollowing] = useState(true);
  const [shown, setShown] = useState({ lines: 0, dropped: 0 });
  const follow = useRef(true);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const model = new LogModel(MAX_LINES);
    const rendered = new Map<number, HTMLElement>();
    let frame = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let drawnAt = 0;
    let gap = MIN_DRAW_MS;
    // One drawing per animation frame at most, and never more than a tenth of the time spent drawing: a long log
    // catching up is drawn now and then (each drawing replaces thousands of lines), a live one within MIN_DRAW_MS.
    const schedule = () => {
      if (frame || timer) return;
      timer = setTimeout(
        () => {
          timer = undefined;
          frame = requestAnimationFrame(draw);
        },
        Math.max(0, drawnAt + gap - performance.now()),
      );
    };
    const draw = () => {
      frame = 0;
      drawnAt = performance.now();
      const { firstId, changed } = model.takeChanges();
      for (const [lineId, node] of rendered) {
        if (lineId >= firstId) break; // in insertion order, oldest first
        node.remove();
        rendered.delete(lineId);
      }
      const appended = document.createDocumentFragment();
      for (const line of changed) {
        const node = rendered.get(line.id);
        if (node) fill(node, line);
        else {
          const created = document.createElement("div");
          created.className = `line ${line.stream}`;
          if (line.stream !== "stdout") created.title = line.stream;
          fill(created, line);
          rendered.set(line.id, created);
          appended.append(created);
        }
      }
      el.append(appended);
      if (follow.current) el.scrollTop = el.scrollHeight;
      gap = Math.max(MIN_DRAW_MS, (performance.now() - drawnAt) * 10);
      setShown({ lines: model.size, dropped: model.dropped });
    };
    const controller = new AbortController();
    (async () => {
      const on = {
        onOpen: () => setConnection({ state: "live" }),
        onReconnect: (attempt: number) => setConnection({ state: "reconnecting", attempt }),
      };
      let worked = performance.now();
      for await (const event of api.follow(id, controller.signal, on)) {
        if (event.type === "log") {
          model.append(event.stream, event.text);
          schedule();
          // Catching up on a long log: hand the thread back now and then, so the page stays responsive.
          if (performance.now() - worked > WORK_SLICE_MS) {
            await new Promise((resolve) => setTimeout(resolve, 0));
            worked = performance.now();
          }
        } else {
          setConnection({ state: "ended", end: event });
        }
      }
    })().catch((err: unknown) => {
      if (!controller.signal.aborted) setError(errorText(err));
    });
    return () => {
      controller.abort();
      cancelAnimationFrame(frame);
      clearTimeout(timer);
      el.replaceChildren();
    };
  }, [api, id]);

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    const atEnd = el.scrollHeight - el.scrollTop - el.clientHeight < 8;
    follow.current = atEnd;
    setFollowing(atEnd);
  };

  const downloadAll = async () => {
    try {
      saveBlob(await api.blob(`/v1/tasks/${encodeURIComponent(id)}/logs`), `${workspace}.log`);
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <section class="log-panel" aria-labelledby="log-title">
      <div class="panel-head">
        <h2 id="log-title">Log</h2>
        <span class={`conn ${connection.state}`} role="status">
          {connection.state === "connecting"
            ? "connecting…"
            : connection.state === "live"
              ? "live"
              : connection.state === "reconnecting"
                ? `connection lost, resuming (attempt ${connection.attempt})…`
                : `ended: ${connection.end.status.replace("_", " ")}${connection.end.exitCode !== null ? `, exit ${connection.end.exitCode}` : ""}`}
        </span>
        <span class="legend">
          <span class="swatch stderr" aria-hidden="true" /> stderr
        </span>
        <button type="button" onClick={downloadAll}>
          Download full log
        </button>
      </div>
      {shown.dropped > 0 ? (
        <p class="notice">
          This log is long: showing its last {shown.lines.toLocaleString()} lines ({shown.dropped.toLocaleString()} earlier lines are not
          shown).{" "}
          <button type="button" class="link" onClick={downloadAll}>
            Download the full log
          </button>
        </p>
      ) : null}
      {error ? (
        <p class="error" role="alert">
          {error}
        </p>
      ) : null}
      <div class="log-wrap">
        {/* biome-ignore lint/a11y/noNoninteractiveTabindex: the log scrolls, so keyboard users need to focus it */}
        <div class="log" ref={box} onScroll={onScroll} tabIndex={0} role="log" aria-label="Task log" aria-live="off" />
        {shown.lines === 0 && connection.state === "ended" ? <p class="nothing-note">The task printed nothing.</p> : null}
        {following ? null : (
          <button
            type="button"
            class="follow"
            onClick={() => {
              follow.current = true;
              setFollowing(true);
              const el = box.current;
              if (el) el.scrollTop = el.scrollHeight;
            }}
          >
            ↓ Follow the end
          </button>
        )}
      </div>
    </section>
  );
}

/** Puts a line's segments into its element as text nodes (colours through the style object, never markup). */
function fill(node: HTMLElement, line: LogLine): void {
  const parts: Node[] = [];
  for (const seg of line.segments) {
    if (!seg.classes && !seg.fg && !seg.bg) {
      parts.push(document.createTextNode(seg.text));
      continue;
    }
    const span = document.createElement("span");
    span.className = seg.classes;
    if (seg.fg) span.style.color = seg.fg;
    if (seg.bg) span.style.backgroundColor = seg.bg;
    span.textContent = seg.text;
    parts.push(span);
  }
  node.replaceChildren(...parts);
}
