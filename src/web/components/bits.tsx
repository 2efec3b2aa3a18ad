// Small pieces shared by the pages: status badges, labels, a confirmation dialog.
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";
import type { TaskStatus } from "../../contract/types.js";

const SYMBOL: Record<TaskStatus, string> = {
  queued: "○",
  running: "◐",
  succeeded: "✓",
  failed: "✕",
  timed_out: "⏱",
  canceled: "⊘",
  expired: "⌛",
};

export function StatusBadge({ status }: { status: TaskStatus }) {
  return (
    <span class={`badge s-${status}`} data-status={status}>
      <span aria-hidden="true">{SYMBOL[status]}</span> {status.replace("_", " ")}
    </span>
  );
}

export function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (entries.length === 0) return <span class="muted">—</span>;
  return (
    <span class="labels">
      {entries.map(([k, v]) => (
        <span class="label" key={k} title={`${k}: ${v}`}>
          <span class="k">{k}</span>
          <span class="v">{v}</span>
        </span>
      ))}
    </span>
  );
}

/** A modal question with a safe default: focus starts on "Keep it"; Escape or "Keep it" closes it, only the named button acts. */
export function Confirm(props: {
  title: string;
  children: ComponentChildren;
  confirm: string;
  danger?: boolean;
  onConfirm: () => void;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = dialog.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return (
    <dialog ref={dialog} class="confirm" aria-labelledby="confirm-title" onClose={props.onClose}>
      <h2 id="confirm-title">{props.title}</h2>
      <div>{props.children}</div>
      <div class="actions">
        <button type="button" onClick={() => dialog.current?.close()}>
          Keep it
        </button>
        <button
          type="button"
          class={props.danger ? "danger" : "primary"}
          onClick={() => {
            props.onConfirm();
            dialog.current?.close();
          }}
        >
          {props.confirm}
        </button>
      </div>
    </dialog>
  );
}
