// Sign-in with an API key. The field has no name and the form is never submitted, so the key cannot end up in a
// URL or a request body; it is cleared from the field as soon as it is checked.
import { useEffect, useRef, useState } from "preact/hooks";
import { errorText } from "../api.js";

export function SignIn({ notice, onKey }: { notice: string; onKey: (key: string) => Promise<void> }) {
  const input = useRef<HTMLInputElement>(null);
  const [error, setError] = useState(notice);
  const [busy, setBusy] = useState(false);
  useEffect(() => input.current?.focus(), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    const field = input.current;
    const key = field?.value.trim() ?? "";
    if (!key) {
      setError("Enter your API key.");
      return;
    }
    setBusy(true);
    setError("");
    try {
      await onKey(key);
      if (field) field.value = "";
    } catch (err) {
      setError(errorText(err));
      setBusy(false);
      field?.select();
    }
  };

  return (
    <main class="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">Sign in to berth</h1>
        <label for="api-key">API key</label>
        <input
          id="api-key"
          ref={input}
          type="password"
          autocomplete="off"
          spellcheck={false}
          aria-describedby="signin-note"
          aria-invalid={error ? true : undefined}
        />
        {error ? (
          <p class="error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        <p id="signin-note" class="note">
          The key stays in this tab only (until you sign out or close it) and is sent to this server as a bearer token.
        </p>
      </form>
    </main>
  );
}
