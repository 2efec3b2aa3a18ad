// The dashboard's list with thousands of tasks, and on a phone. An API process with no worker beside it, so every
// submitted task stays queued: the list pages through real tasks in the store, read through the public API.
import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Browser, Page } from "playwright-core";
import type { TaskView } from "../../src/contract/types.js";
import { launchChromium } from "../helpers/browser.js";
import { signIn as signInAt } from "../helpers/dashboard.js";
import { type ServerProcess, spawnServer } from "../helpers/server-process.js";
import { waitFor } from "../helpers/wait-for.js";

const KEY = "paging-key-5d1c9a07";
const TASKS = 2_000;
const SHOTS = process.env.BERTH_SCREENSHOTS_DIR;

let api: ServerProcess;
let browser: Browser;
let shots: string;
/** Submitted task ids and when the server says each was created. */
const submitted: string[] = [];
const createdAt = new Map<string, number>();
const odd = new Set<string>();

async function submit(n: number): Promise<TaskView> {
  const res = await fetch(`${api.url}/v1/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ command: ["echo", `task ${n}`], labels: { batch: n % 2 === 0 ? "even" : "odd" } }),
  });
  if (res.status !== 202) throw new Error(`submit ${n}: ${res.status} ${await res.text()}`);
  return (await res.json()) as TaskView;
}

/** Newest first: no task shown after one created later. */
const newestFirst = (ids: string[]) => ids.every((id, i) => i === 0 || (createdAt.get(id) ?? 0) <= (createdAt.get(ids[i - 1] ?? "") ?? 0));

beforeAll(async () => {
  api = await spawnServer(
    { BERTH_API_KEYS: `acme:${KEY}`, BERTH_TENANT_MAX_ACTIVE: String(TASKS), BERTH_RATE_LIMIT_PER_MINUTE: "0" },
    "api",
  );
  for (let n = 0; n < TASKS; n += 8) {
    const batch = await Promise.all(Array.from({ length: Math.min(8, TASKS - n) }, (_, i) => submit(n + i)));
    for (const t of batch) {
      submitted.push(t.id);
      createdAt.set(t.id, Date.parse(t.createdAt));
      if (t.labels.batch === "odd") odd.add(t.id);
    }
  }
  browser = await launchChromium();
  shots = await mkdtemp(path.join(tmpdir(), "berth-dashboard-paging-"));
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await api?.cleanup();
  if (shots) await rm(shots, { recursive: true, force: true });
}, 120_000);

const signIn = (page: Page) => signInAt(page, api.url, KEY);

/** The ids of the rows shown, once the page shows a page of them different from `before`. */
async function rowsAfter(page: Page, before: string[]): Promise<string[]> {
  return waitFor(
    "the next page of rows",
    () => page.locator("tr.row a[title]").evaluateAll((els) => els.map((e) => e.getAttribute("title") ?? "")),
    (ids) => ids.length > 0 && ids.join() !== before.join(),
  );
}

/** How wide the page's content is against the window: wider means the page scrolls sideways. */
const widthsOf = (page: Page) =>
  page.evaluate<{ page: number; view: number }>("({ page: document.documentElement.scrollWidth, view: window.innerWidth })");

describe("the dashboard's list with thousands of tasks", () => {
  it("pages through every task once, newest first, and back again", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    await signIn(page);
    await waitFor(
      "the queued count",
      () => page.locator(".counts").innerText(),
      (t) => t.includes(`${TASKS} queued`),
    );

    const seen: string[] = [];
    const pages: string[][] = [];
    let rows = await rowsAfter(page, []);
    for (;;) {
      pages.push(rows);
      seen.push(...rows);
      const older = page.getByRole("button", { name: "Older →" });
      if (await older.isDisabled()) break;
      await older.click();
      rows = await rowsAfter(page, rows);
    }
    // Every task exactly once, newest first, in pages of at most 50.
    expect(seen.length).toBe(TASKS);
    expect([...seen].sort()).toEqual([...submitted].sort());
    expect(newestFirst(seen)).toBe(true);
    expect(pages.every((p) => p.length <= 50)).toBe(true);

    // Back one page, then to the newest.
    await page.getByRole("button", { name: "← Newer" }).click();
    expect(await rowsAfter(page, pages.at(-1) ?? [])).toEqual(pages.at(-2));
    await page.getByRole("link", { name: "Newest" }).click();
    expect(await rowsAfter(page, pages.at(-2) ?? [])).toEqual(pages[0]);

    // A label filter pages through its own tasks only.
    await page.getByRole("textbox", { name: "Label" }).fill("batch:odd");
    await page.getByRole("button", { name: "Filter" }).click();
    const first = await rowsAfter(page, pages[0] ?? []);
    await page.getByRole("button", { name: "Older →" }).click();
    const second = await rowsAfter(page, first);
    const both = [...first, ...second];
    expect(both.length).toBe(100);
    expect(new Set(both).size).toBe(100);
    expect(both.every((id) => odd.has(id))).toBe(true);
    expect(newestFirst(both)).toBe(true);
    expect(errors).toEqual([]);
    await context.close();
  }, 600_000);

  it("is readable on a phone: no sideways page scroll, counts and paging in reach", async () => {
    const context = await browser.newContext({
      viewport: { width: 390, height: 844 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    await signIn(page);
    await rowsAfter(page, []);
    await waitFor(
      "the queued count",
      () => page.locator(".counts").innerText(),
      (t) => t.includes(`${TASKS} queued`),
    );
    // The page itself never scrolls sideways (a wide table scrolls inside its own box).
    const widths = await widthsOf(page);
    expect(widths.page).toBeLessThanOrEqual(widths.view);
    const file = path.join(shots, "dashboard-phone.png");
    await page.screenshot({ path: file });
    if (SHOTS) await copyFile(file, path.join(SHOTS, "dashboard-phone.png"));

    // A task's page opens from the list and shows its command.
    const first = page.locator("tr.row a[title]").first();
    const id = (await first.getAttribute("title")) ?? "";
    await first.tap();
    await page.getByText("echo", { exact: false }).first().waitFor();
    expect(page.url()).toContain(`#/tasks/${id}`);
    const taskWidths = await widthsOf(page);
    expect(taskWidths.page).toBeLessThanOrEqual(taskWidths.view);
    await context.close();
  }, 120_000);
});
