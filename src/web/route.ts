// Where the page is, kept in the URL's fragment (#/tasks/ID): bookmarkable, never sent to the server, and
// holding nothing secret (the key is never part of it).
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "list"; status: string; label: string; cursor: string; tenant: string }
  | { page: "task"; id: string }
  | { page: "submit"; from: string; again: string };

export function parseRoute(hash: string): Route {
  const [path = "", query = ""] = hash.replace(/^#/, "").split("?", 2);
  const q = new URLSearchParams(query);
  const task = /^\/tasks\/([A-Za-z0-9_-]{1,64})$/.exec(path);
  if (task) return { page: "task", id: task[1] as string };
  if (path === "/new") return { page: "submit", from: q.get("from") ?? "", again: q.get("again") ?? "" };
  return {
    page: "list",
    status: q.get("status") ?? "",
    label: q.get("label") ?? "",
    cursor: q.get("cursor") ?? "",
    tenant: q.get("tenant") ?? "",
  };
}

export function href(route: Route): string {
  const query = (o: Record<string, string>) => {
    const q = new URLSearchParams(Object.entries(o).filter(([, v]) => v !== "")).toString();
    return q ? `?${q}` : "";
  };
  switch (route.page) {
    case "task":
      return `#/tasks/${route.id}`;
    case "submit":
      return `#/new${query({ from: route.from, again: route.again })}`;
    default:
      return `#/${query({ tenant: route.tenant, status: route.status, label: route.label, cursor: route.cursor })}`;
  }
}

export function go(route: Route): void {
  location.hash = href(route);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}
