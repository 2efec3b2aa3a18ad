// The dashboard in a real headless Chromium against a real berth: the API as its own process (so it can be restarted
// mid-task), a worker on the real Docker engine and Redis. Every assertion waits for what the page shows.
import { createHash } from "node:crypto";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import type { TaskView } from "../../src/contract/types.js";
import { launchChromium } from "../helpers/browser.js";
import { type DashboardServer, newPage as openPage, signIn as signInAt, startDashboardServer } from "../helpers/dashboard.js";
import type { Harness } from "../helpers/harness.js";
import type { ServerProcess } from "../helpers/server-process.js";
import { waitFor } from "../helpers/wait-for.js";

const ACME_KEY = "acme-key-1f7c2d9e";
const OTHER_KEY = "other-key-9b3e6a41";
const ADMIN_KEY = "admin-key-5d0c8e2a7f41";
const KEYS = `acme:${ACME_KEY},other:${OTHER_KEY}`;
const acme = { authorization: `Bearer ${ACME_KEY}` };
/** Screenshots go here; `npm run screenshots` points it at docs/ to refresh the README's pictures. */
const SHOTS = process.env.BERTH_SCREENSHOTS_DIR;

let server: DashboardServer;
let h: Harness;
let api: ServerProcess;
let browser: Browser;
let shots: string;

beforeAll(async () => {
  // The page's server: an API process of the worker's namespace and directories, which a test restarts.
  server = await startDashboardServer({ BERTH_API_KEYS: KEYS, BERTH_ADMIN_KEYS: ADMIN_KEY });
  ({ h, api } = server);
  browser = await launchChromium();
  shots = await mkdtemp(path.join(tmpdir(), "berth-dashboard-shots-"));
}, 120_000);

afterAll(async () => {
  await browser?.close();
  const left = server ? (await server.close()).leftoverContainers : [];
  if (shots) await rm(shots, { recursive: true, force: true });
  expect(left).toEqual([]);
}, 120_000);

const newPage = () => openPage(browser);
const signIn = (page: Page, key: string) => signInAt(page, api.url, key);
const submit = (body: unknown) => h.submit(body, acme);
const workspaceOf = (t: TaskView) => path.join(h.root, "workspaces", t.workspace);
/** The task's id from the page's address (#/tasks/ID). */
const idFromUrl = (page: Page) => /#\/tasks\/([A-Za-z0-9_-]+)$/.exec(page.url())?.[1] ?? "";
const logText = (page: Page) => page.getByRole("log", { name: "Task log" }).innerText();
const statusOf = (page: Page) => page.locator(".task-head [data-status]").getAttribute("data-status");

describe("the dashboard in a browser", () => {
  it("signs in, submits from the form, shows the task live in the list and its page until it succeeds", async () => {
    const list = await newPage();
    await signIn(list.page, ACME_KEY);
    // The key is in no URL and nowhere in the page.
    expect(list.page.url()).not.toContain(ACME_KEY);
    expect(await list.page.content()).not.toContain(ACME_KEY);

    const form = await newPage();
    await signIn(form.page, ACME_KEY);
    await form.page.getByRole("link", { name: "New task" }).first().click();
    await form.page
      .getByRole("textbox", { name: "Command" })
      .fill(
        [
          "printf '\\033[1;34m==>\\033[0m \\033[32mfirst-line\\033[0m: building\\n'",
          "for i in 1 2 3 4; do printf 'compiling module %s of 4\\n' $i; done",
          "printf 'progress 10%%\\rprogress 60%%\\rprogress 100%%\\n'",
          "printf '\\033[33mwarning:\\033[0m deprecated flag\\n' >&2",
          "mkdir -p sub; echo content-of-file > sub/data.txt; echo '{\"ok\": true}' > result.json",
          "printf '\\033[2mwaiting for the go file\\033[0m\\n'",
          "while [ ! -e go ]; do sleep 0.1; done; echo second-line; echo to-stderr >&2",
        ].join("\n"),
      );
    await form.page.getByRole("textbox", { name: /Labels/ }).fill("suite=dashboard");
    // A page that already shows the first printed line noted when it appeared (for the delay printed below).
    await form.page.evaluate(`(() => {
      const seen = () => {
        const log = document.querySelector('[role="log"]');
        if (!window.__firstLineAt && log && log.textContent.includes("first-line")) window.__firstLineAt = Date.now();
      };
      new MutationObserver(seen).observe(document.body, { childList: true, subtree: true, characterData: true });
    })()`);
    await form.page.getByRole("button", { name: "Submit task" }).click();
    await form.page.waitForURL(/#\/tasks\/[A-Za-z0-9_-]+$/);
    const id = idFromUrl(form.page);
    const task = await h.get(id, acme);

    // The list (another tab) shows the new task without a reload.
    const row = list.page.locator("tr.row", { has: list.page.locator(`a[title="${id}"]`) });
    await row.waitFor();
    expect(await row.innerText()).toContain("suite");

    // The first line shows while the task is still running: it waits for a file only this test creates.
    await waitFor(
      "the first line on the task page",
      () => logText(form.page),
      (t) => t.includes("first-line"),
    );
    expect(await statusOf(form.page)).toBe("running");
    await waitFor(
      "the list row to say running",
      () => row.innerText(),
      (t) => t.includes("running"),
    );
    const firstEvent = await firstLogEventTime(id);
    const shownAt = Number(await form.page.evaluate("window.__firstLineAt"));
    process.stdout.write(`dashboard: first line shown ${shownAt - firstEvent} ms after berth recorded it\n`);
    // Coloured: the ANSI sequence became a class, never visible escape text.
    expect(await form.page.locator('[role="log"] .fg-green').innerText()).toBe("first-line");

    // Carriage returns overwrite the line: only the last state of the progress line shows.
    await waitFor(
      "the progress line",
      () => logText(form.page),
      (t) => t.includes("progress 100%") && !t.includes("progress 60%"),
    );
    // The files panel, during the run.
    await form.page.getByRole("button", { name: "Refresh" }).click();
    await form.page.getByRole("button", { name: "result.json", exact: true }).waitFor();
    await screenshot(form.page, "dashboard-task.png");
    await writeFile(path.join(workspaceOf(task), "go"), "");
    // Status changes without a reload, on the task page and in the list.
    await waitFor(
      "the page to say succeeded",
      () => statusOf(form.page),
      (s) => s === "succeeded",
    );
    await waitFor(
      "the list to say succeeded",
      () => row.innerText(),
      (t) => t.includes("succeeded"),
    );
    await waitFor(
      "the whole log",
      () => logText(form.page),
      (t) => t.includes("second-line") && t.includes("to-stderr"),
    );
    expect(await form.page.locator('[role="log"] .line.stderr').allInnerTexts()).toEqual(["warning: deprecated flag", "to-stderr"]);

    // The archive from the button is the one berth recorded.
    const done = await h.get(id, acme);
    const [download] = await Promise.all([
      form.page.waitForEvent("download"),
      form.page.getByRole("button", { name: "Download archive" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`${done.workspace}.tar.gz`);
    const bytes = await readFile((await download.path()) as string);
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(done.archive?.sha256);

    // A file opened from the files panel shows its content.
    await form.page.getByRole("button", { name: "data.txt", exact: true }).click();
    await waitFor(
      "the file's content",
      () => form.page.locator("pre.file-text").innerText(),
      (t) => t.includes("content-of-file"),
    );

    expect([...list.problems, ...form.problems]).toEqual([]);
    expect(api.output()).not.toContain(ACME_KEY);
    await list.context.close();
    await form.context.close();
  }, 120_000);

  it("cancels a running task from its page after asking", async () => {
    const task = await submit({ command: ["sleep", "300"] });
    const { context, page, problems } = await newPage();
    await signIn(page, ACME_KEY);
    await page.goto(`${api.url}/#/tasks/${task.id}`);
    await waitFor(
      "the task to run",
      () => statusOf(page),
      (s) => s === "running",
    );
    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    const dialog = page.getByRole("dialog", { name: "Cancel this task?" });
    await dialog.getByRole("button", { name: "Cancel task" }).click();
    await waitFor(
      "the page to say canceled",
      () => statusOf(page),
      (s) => s === "canceled",
      { timeoutMs: 30_000 },
    );
    expect((await h.get(task.id, acme)).status).toBe("canceled");
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);

  it("shows another tenant neither the task in its list nor the task at its address", async () => {
    const task = await submit({ command: ["true"], labels: { owner: "acme" } });
    await h.waitFinished(task.id, 60_000, acme);
    const { context, page } = await newPage();
    await signIn(page, OTHER_KEY);
    await page.getByText(/No tasks yet/).waitFor();
    expect(await page.locator(`a[title="${task.id}"]`).count()).toBe(0);
    await page.goto(`${api.url}/#/tasks/${task.id}`);
    await page.getByRole("heading", { name: "No such task" }).waitFor();
    expect(await page.locator("main").innerText()).not.toContain("acme");
    await context.close();
  }, 60_000);

  it("signs in an admin key: every tenant's tasks with their tenant, a tenant filter, and no way to submit", async () => {
    const mine = await submit({ command: ["true"], labels: { owner: "acme" } });
    const theirs = await h.submit({ command: ["true"], labels: { owner: "other" } }, { authorization: `Bearer ${OTHER_KEY}` });
    await h.waitFinished(mine.id, 60_000, acme);
    await h.waitFinished(theirs.id, 60_000, { authorization: `Bearer ${OTHER_KEY}` });
    const { context, page, problems } = await newPage();
    await signIn(page, ADMIN_KEY);
    await page.locator(".who .admin", { hasText: "admin" }).waitFor();
    expect(await page.getByRole("link", { name: "New task" }).count()).toBe(0);
    const row = (id: string) => page.locator("tr.row", { has: page.locator(`a[title="${id}"]`) });
    await row(mine.id).waitFor();
    await row(theirs.id).waitFor();
    expect(await row(theirs.id).locator("td.tenant").innerText()).toBe("other");
    await page.getByLabel("Tenant").selectOption("acme");
    await page.waitForURL(/#\/\?tenant=acme$/);
    await row(theirs.id).waitFor({ state: "detached" });
    expect(await row(mine.id).locator("td.tenant").innerText()).toBe("acme");
    await row(mine.id).locator(`a[title="${mine.id}"]`).click();
    await page.locator(".details dt", { hasText: "Tenant" }).waitFor();
    expect(await page.getByRole("button", { name: "Run again" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Delete" }).count()).toBe(1);
    // On a phone, neither the task's page nor the list with its tenant column and filter scrolls sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    const sideways = () => page.evaluate("document.documentElement.scrollWidth > window.innerWidth");
    expect(await sideways()).toBe(false);
    await page.goBack();
    await row(mine.id).locator("td.tenant").waitFor();
    expect(await sideways()).toBe(false);
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);

  it("shows markup and escape sequences a task prints, labels and file names as text, and runs no script", async () => {
    const hostile = [
      "<script>window.__pwned = 'script'</script>",
      "<img src=x onerror=\"window.__pwned = 'img'\">",
      "\x1b]8;;javascript:window.__pwned='osc8'\x07click-me\x1b]8;;\x07",
      "\x1b]0;window-title\x07\x1b[2J\x1b[31m<b>red</b>\x1b[0m",
    ];
    const task = await submit({
      command: ["sh", "-c", 'printf "%s\\n" "$@"; : > "<img src=y onerror=window.__pwned=1>.txt"', "sh", ...hostile],
      labels: { note: "<i onmouseover=alert(1)>x</i>" },
    });
    await h.waitFinished(task.id, 60_000, acme);
    const { context, page, problems } = await newPage(); // CSP reports are among its problems
    await signIn(page, ACME_KEY);
    expect(await page.locator(`tr.row:has(a[title="${task.id}"])`).innerText()).toContain("<i onmouseover=alert(1)>x</i>");
    await page.goto(`${api.url}/#/tasks/${task.id}`);
    const log = page.getByRole("log", { name: "Task log" });
    await waitFor(
      "the log",
      () => log.innerText(),
      (t) => t.includes("click-me"),
    );
    expect((await log.innerText()).split("\n").filter(Boolean)).toEqual([
      "<script>window.__pwned = 'script'</script>",
      "<img src=x onerror=\"window.__pwned = 'img'\">",
      "click-me",
      "<b>red</b>",
    ]);
    expect(await log.locator("script, img, a, b").count()).toBe(0);
    // In the files panel and in the changes panel's list, as text.
    for (const list of ["Workspace files", "Changed paths"]) {
      await page
        .getByRole("list", { name: list })
        .getByRole("button", { name: "<img src=y onerror=window.__pwned=1>.txt", exact: true })
        .waitFor();
    }
    expect(await page.locator("main img").count()).toBe(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    expect(await page.title()).toBe("berth");
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);

  it("counts running tasks at the top, filters the list by status and label", async () => {
    const blocked = await submit({ command: ["sh", "-c", "while [ ! -e go ]; do sleep 0.1; done"], labels: { kind: "service" } });
    const failed = await submit({ command: ["sh", "-c", "echo boom >&2; exit 3"], labels: { kind: "check", ticket: "ABC-7" } });
    const passed = await submit({ command: ["python3", "-c", "print(6 * 7)"], labels: { kind: "check", ticket: "ABC-8" } });
    await h.waitFinished(failed.id, 60_000, acme);
    await h.waitFinished(passed.id, 60_000, acme);
    await waitFor(
      "the blocked task to run",
      () => h.get(blocked.id, acme),
      (t) => t.status === "running",
    );
    const { context, page, problems } = await newPage();
    await signIn(page, ACME_KEY);
    await waitFor(
      "the counts",
      () => page.locator(".counts").innerText(),
      (t) => t.includes("1 running") && t.includes("0 queued"),
    );
    await screenshot(page, "dashboard-list.png");

    await page.getByLabel("Status").selectOption("failed");
    await waitFor(
      "failed tasks only",
      () => page.locator("tr.row [data-status]").evaluateAll((els) => els.map((e) => e.getAttribute("data-status"))),
      (s) => s.length > 0 && s.every((x) => x === "failed"),
    );
    expect(await page.locator(`a[title="${failed.id}"]`).count()).toBe(1);
    await page.getByLabel("Status").selectOption("");
    await page.getByRole("textbox", { name: "Label" }).fill("ticket:ABC-8");
    await page.getByRole("button", { name: "Filter" }).click();
    await waitFor(
      "the labelled task only",
      () => page.locator("tr.row a[title]").evaluateAll((els) => els.map((e) => e.getAttribute("title"))),
      (ids) => ids.length === 1 && ids[0] === passed.id,
    );

    // The blocked task ends: the count goes down without a reload.
    await writeFile(path.join(workspaceOf(blocked), "go"), "");
    await waitFor(
      "no task running",
      () => page.locator(".counts").innerText(),
      (t) => t.includes("0 running"),
    );
    expect(problems).toEqual([]);
    await context.close();
  }, 90_000);

  it("resumes the log after the API server restarts mid-task, with no line lost or repeated", async () => {
    const task = await submit({
      command: [
        "sh",
        "-c",
        "for i in $(seq 1 30); do echo line-$i; done; while [ ! -e go ]; do sleep 0.1; done; for i in $(seq 31 60); do echo line-$i; done",
      ],
    });
    const { context, page } = await newPage();
    await signIn(page, ACME_KEY);
    await page.goto(`${api.url}/#/tasks/${task.id}`);
    await waitFor(
      "line 30",
      () => logText(page),
      (t) => t.includes("line-30"),
    );

    api.proc.kill("SIGTERM");
    await api.proc;
    await page.getByText(/resuming/).waitFor();
    await api.restart();
    await writeFile(path.join(workspaceOf(task), "go"), "");
    await waitFor(
      "the end of the log",
      () => page.locator(".conn").innerText(),
      (t) => t.startsWith("ended"),
      { timeoutMs: 60_000 },
    );
    const lines = (await logText(page)).split("\n").filter(Boolean);
    expect(lines).toEqual(Array.from({ length: 60 }, (_, i) => `line-${i + 1}`));
    expect((await h.waitFinished(task.id, 60_000, acme)).status).toBe("succeeded");
    await context.close();
  }, 90_000);
});

/** When berth recorded the task's first log entry (its `time`), from the SSE stream. */
async function firstLogEventTime(id: string): Promise<number> {
  const controller = new AbortController();
  const res = await fetch(`${api.url}/v1/tasks/${id}/logs`, {
    headers: { ...acme, accept: "text/event-stream" },
    signal: controller.signal,
  });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  let text = "";
  try {
    for (;;) {
      const m = /data: (\{"stream".*\})\n/.exec(text);
      if (m) return Date.parse((JSON.parse(m[1] as string) as { time: string }).time);
      const { value, done } = await reader.read();
      if (done) throw new Error("the log stream ended before its first entry");
      text += new TextDecoder().decode(value);
    }
  } finally {
    controller.abort();
  }
}

async function screenshot(page: Page, name: string): Promise<void> {
  const file = path.join(shots, name);
  await page.screenshot({ path: file });
  if (SHOTS) await copyFile(file, path.join(SHOTS, name));
}
