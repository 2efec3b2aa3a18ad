// The page's frame: sign-in, the header (counts, navigation, sign-out) and the current page.
import { useEffect, useMemo, useState } from "preact/hooks";
import type { ServerInfo, TaskCounts } from "../../contract/types.js";
import { Api, BerthApiError, errorText } from "../api.js";
import { Live, useLive } from "../live.js";
import { href, useRoute } from "../route.js";
import { forgetKey, storeKey, storedKey } from "../session.js";
import { SignIn } from "./sign-in.js";
import { SubmitForm } from "./submit-form.js";
import { TaskList } from "./task-list.js";
import { TaskPage } from "./task-page.js";

type Session = { state: "checking" } | { state: "signed-out"; notice: string } | { state: "in"; api: Api; info: ServerInfo };

export function App() {
  const [session, setSession] = useState<Session>({ state: "checking" });

  const signOut = (notice = "") => {
    forgetKey();
    setSession({ state: "signed-out", notice });
  };

  const open = async (key: string | null): Promise<void> => {
    const api = new Api(key, () => signOut("The server no longer accepts that key; sign in again."));
    const info = await new Api(key).info();
    if (key) storeKey(key);
    setSession({ state: "in", api, info });
  };

  useEffect(() => {
    // A key kept by this tab (or none, on a server without keys) is tried first.
    open(storedKey()).catch((err: unknown) => {
      const refused = err instanceof BerthApiError && err.status === 401;
      if (refused) forgetKey();
      setSession({ state: "signed-out", notice: refused ? "" : errorText(err) });
    });
  }, []);

  if (session.state === "checking") return <p class="splash">Loading…</p>;
  if (session.state === "signed-out") return <SignIn notice={session.notice} onKey={open} />;
  return <SignedIn api={session.api} info={session.info} onSignOut={() => signOut()} />;
}

function SignedIn({ api, info, onSignOut }: { api: Api; info: ServerInfo; onSignOut: () => void }) {
  const live = useMemo(() => new Live(api), [api]);
  useEffect(() => () => live.close(), [live]);
  const [counts, setCounts] = useState<TaskCounts | null>(live.counts);
  const [connected, setConnected] = useState(true);
  const route = useRoute();
  useLive(live, (e) => {
    if (e.type === "counts") setCounts(e.counts);
    if (e.type === "open") setConnected(true);
    if (e.type === "down") setConnected(false);
  });

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={href({ page: "list", status: "", label: "", cursor: "", tenant: "" })} aria-label="berth: all tasks">
          <img src={ICON} alt="" width={22} height={22} />
          berth
        </a>
        <nav aria-label="Main">
          <a href="#/" aria-current={route.page === "list" ? "page" : undefined}>
            Tasks
          </a>
          {info.admin ? null : (
            <a href="#/new" aria-current={route.page === "submit" ? "page" : undefined}>
              New task
            </a>
          )}
        </nav>
        <p class="counts" aria-live="polite">
          {connected ? null : <span class="offline">reconnecting… </span>}
          {counts ? (
            <>
              <a href="#/?status=running" class="count running">
                <span class="dot" aria-hidden="true" />
                {counts.running} running
              </a>
              <a href="#/?status=queued" class="count queued">
                {counts.queued} queued
              </a>
            </>
          ) : null}
        </p>
        <p class="who">
          {info.admin ? (
            <span class="admin" title="An admin key: every tenant's tasks">
              admin
            </span>
          ) : (
            <span title="Your tenant">{info.tenant}</span>
          )}
          {info.keysRequired ? (
            <button type="button" class="link" onClick={onSignOut}>
              Sign out
            </button>
          ) : null}
        </p>
      </header>
      <main id="main">
        {route.page === "task" ? (
          <TaskPage key={route.id} api={api} live={live} id={route.id} admin={info.admin} />
        ) : route.page === "submit" ? (
          info.admin ? (
            <p class="empty">An admin key submits no tasks: sign in with a tenant's key to submit.</p>
          ) : (
            <SubmitForm key={`${route.from}|${route.again}`} api={api} info={info} from={route.from} again={route.again} />
          )
        ) : (
          <TaskList api={api} live={live} route={route} tenants={info.admin ? (info.tenants ?? []) : null} />
        )}
      </main>
    </>
  );
}

/** The icon's URL, set by the page (it is content-hashed at build time). */
const ICON = document.querySelector<HTMLLinkElement>('link[rel="icon"]')?.href ?? "";
