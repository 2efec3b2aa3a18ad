// What the browser tests share: a berth whose API runs as its own process (so a test can restart it) beside an
// in-process worker of the same namespace and directories, and a page that records every problem it meets.
import type { Browser, BrowserContext, Page } from "playwright-core";
import { type Harness, startHarness } from "./harness.js";
import { type ServerProcess, spawnServer } from "./server-process.js";

export interface DashboardServer {
  readonly h: Harness;
  readonly api: ServerProcess;
  close(): Promise<{ leftoverContainers: string[] }>;
}

/** A worker (in this process) and the page's API server (a process) sharing one namespace, Redis and directories. */
export async function startDashboardServer(env: Record<string, string>): Promise<DashboardServer> {
  const h = await startHarness(env);
  const api = await spawnServer(
    { ...env, BERTH_NAMESPACE: h.namespace, BERTH_WORKSPACE_DIR: `${h.root}/workspaces`, BERTH_ARCHIVE_DIR: `${h.root}/archives` },
    "api",
  );
  return {
    h,
    api,
    async close() {
      await api.cleanup();
      const leftoverContainers = await h.leftoverContainers();
      await h.close();
      return { leftoverContainers };
    },
  };
}

/**
 * A fresh browser context and page at 1280×800. `problems` collects page errors, answers of 400 and above (but 401:
 * the page first asks whether the server needs a key at all), console errors and Content-Security-Policy reports.
 */
export async function newPage(browser: Browser): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const problems: string[] = [];
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400 && r.status() !== 401) problems.push(`${r.status()} from ${r.request().method()} ${r.url()}`);
  });
  page.on("console", (m) => {
    // Failed requests are reported with their address by the response handler.
    if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(`console ${m.type()}: ${m.text()}`);
    if (/Content Security Policy|Trusted Type/i.test(m.text())) problems.push(`csp: ${m.text()}`);
  });
  return { context, page, problems };
}

/** Signs in on the dashboard at `url` with `key` and waits for the task list. */
export async function signIn(page: Page, url: string, key: string): Promise<void> {
  await page.goto(url);
  await page.getByLabel("API key").fill(key);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Tasks" }).waitFor();
}
