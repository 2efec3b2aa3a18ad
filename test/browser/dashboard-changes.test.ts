// What a finished task changed, on its page in a real headless Chromium against a real berth (an API process beside a
// worker on the real Docker engine and Redis): the summary, the change list (paged), one file's diff shown as text
// with added and removed lines marked, and the change-only archive downloaded through the signed-in key.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Browser, Locator, Page } from "playwright-core";
import type { TaskView } from "../../src/contract/types.js";
import { launchChromium } from "../helpers/browser.js";
import { type DashboardServer, newPage as openPage, signIn, startDashboardServer } from "../helpers/dashboard.js";
import type { Harness } from "../helpers/harness.js";
import type { ServerProcess } from "../helpers/server-process.js";
import { waitFor } from "../helpers/wait-for.js";

const KEY = "changes-key-7e2b9c41";
const KEYS = `acme:${KEY}`;
const auth = { authorization: `Bearer ${KEY}` };
const HOSTILE_LINE = "<script>window.__pwned = 'diff'</script>";
const HOSTILE_NAME = "<img src=x onerror=window.__pwned=1>.txt";

let server: DashboardServer;
let h: Harness;
let api: ServerProcess;
let browser: Browser;

beforeAll(async () => {
  server = await startDashboardServer({ BERTH_API_KEYS: KEYS });
  ({ h, api } = server);
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  const left = server ? (await server.close()).leftoverContainers : [];
  expect(left).toEqual([]);
}, 120_000);

const newPage = () => openPage(browser);

async function openTask(page: Page, id: string): Promise<void> {
  await signIn(page, api.url, KEY);
  await page.goto(`${api.url}/#/tasks/${id}`);
  await page.getByRole("heading", { name: "Changes" }).waitFor();
}

async function run(body: Record<string, unknown>): Promise<TaskView> {
  const t = await h.submit({ timeoutSeconds: 120, ...body }, auth);
  const done = await h.waitFinished(t.id, 90_000, auth);
  expect(done).toMatchObject({ status: "succeeded", exitCode: 0 });
  return done;
}

const entries = (page: Page) => page.locator("ul.changes > li").allInnerTexts();
/** The diff's lines of one kind (each line ends with its newline, for copying). */
const linesOf = async (diff: Locator, sel: string) => (await diff.locator(sel).allInnerTexts()).map((l) => l.replace(/\n$/, ""));
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

describe("what a task changed, on its page", () => {
  it("shows the summary, the list, a file's diff as text and downloads the change-only archive", async () => {
    const task = await run({
      files: { "mod.txt": "line1\nline2\nline3\n", "del.txt": "bye\n", "keep.txt": "unchanged\n" },
      command: [
        "sh",
        "-c",
        'printf "line1\\n%s\\nline3\\n" "$1" > mod.txt; rm del.txt; printf "hello\\n" > "$2"',
        "sh",
        HOSTILE_LINE,
        HOSTILE_NAME,
      ],
    });
    expect(task.changes).toMatchObject({ added: 1, modified: 1, deleted: 1, typeChanged: 0 });
    const { context, page, problems } = await newPage();
    await openTask(page, task.id);

    // The summary, from the task view.
    const summary = oneLine(await page.locator(".change-summary").innerText());
    expect(summary).toContain("1 added");
    expect(summary).toContain("1 modified");
    expect(summary).toContain("1 deleted");
    // Added: the new 6-byte file and mod.txt's growth (line2 → the longer line); removed: del.txt's 4 bytes.
    const grew = HOSTILE_LINE.length - "line2".length;
    expect(summary).toContain(`+${6 + grew} B −4 B`);

    // The list, in path order, each with its kind (a letter, and its name for screen readers), type and sizes; the
    // file name shown as text.
    await waitFor(
      "the change list",
      () => entries(page),
      (e) => e.length === 3,
    );
    expect((await entries(page)).map(oneLine)).toEqual([
      `A added ${HOSTILE_NAME} file 6 B`,
      "D deleted del.txt file 4 B",
      `M modified mod.txt file 18 B → ${18 + grew} B`,
    ]);
    expect(await page.locator("ul.changes").getByText("added", { exact: true }).count()).toBe(1);

    // The diff of the modified file, opened from the keyboard: lines are text, added and removed ones marked.
    const modButton = page.locator("ul.changes").getByRole("button", { name: "mod.txt", exact: true });
    await modButton.focus();
    await page.keyboard.press("Enter");
    const diff = page.locator("pre.diff");
    await waitFor(
      "the diff of mod.txt",
      () => diff.innerText(),
      (t) => t.includes("line3"),
    );
    const text = await diff.innerText();
    expect(text).toContain("--- a/mod.txt");
    expect(text).toContain("+++ b/mod.txt");
    expect(await linesOf(diff, ".d-del")).toEqual(["-line2"]);
    expect(await linesOf(diff, ".d-add")).toEqual([`+${HOSTILE_LINE}`]);
    expect(await linesOf(diff, ".d-ctx")).toEqual([" line1", " line3"]);
    expect(await linesOf(diff, ".d-hunk")).toEqual(["@@ -1,3 +1,3 @@"]);
    expect(await diff.locator("script, img").count()).toBe(0);
    expect(await page.locator(`ul.changes img, .viewer img`).count()).toBe(0);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();
    // Added and removed lines look different (the classes carry colours from the stylesheet, no inline style).
    const background = (sel: string) => page.evaluate(`getComputedStyle(document.querySelector("pre.diff ${sel}")).backgroundColor`);
    expect(await background(".d-add")).not.toBe(await background(".d-del"));
    expect(await background(".d-add")).not.toBe(await background(".d-ctx"));
    expect(await diff.locator("[style]").count()).toBe(0);

    // The added file's diff too: its hostile name is in the header, as text.
    await page.locator("ul.changes").getByRole("button", { name: HOSTILE_NAME, exact: true }).click();
    await waitFor(
      "the diff of the added file",
      () => diff.innerText(),
      (t) => t.includes("+hello"),
    );
    expect(await linesOf(diff, ".d-add")).toEqual(["+hello"]);
    expect(await page.evaluate("window.__pwned")).toBeUndefined();

    // The change-only archive from the button is the one the API names by its sha256.
    const res = await h.request("GET", `/v1/tasks/${task.id}/archive?changes=only`, undefined, auth);
    expect(res.statusCode).toBe(200);
    const sha = res.headers.get("x-berth-sha256");
    expect(sha).toMatch(/^[0-9a-f]{64}$/);
    expect(res.headers.get("etag")).toBe(`"${sha}"`);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download changes" }).click()]);
    expect(download.suggestedFilename()).toBe(`${task.workspace}.changes.tar.gz`);
    const bytes = await readFile((await download.path()) as string);
    expect(createHash("sha256").update(bytes).digest("hex")).toBe(sha);

    // On a phone, with the diff open, the page does not scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await diff.waitFor();
    expect(await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")).toBe(false);

    expect(problems).toEqual([]);
    expect(api.output()).not.toContain(KEY);
    await context.close();
  }, 180_000);

  it("pages through a long change list with its cursor", async () => {
    const task = await run({ command: ["sh", "-c", "mkdir many; for i in $(seq 1000 1249); do echo $i > many/f$i; done"] });
    expect(task.changes).toMatchObject({ added: 251, modified: 0, deleted: 0 });
    const { context, page, problems } = await newPage();
    await openTask(page, task.id);
    await waitFor(
      "the first page",
      () => entries(page),
      (e) => e.length === 200,
    );
    await page.getByRole("button", { name: "Show more" }).click();
    await waitFor(
      "the second page",
      () => entries(page),
      (e) => e.length === 251,
    );
    const paths = (await page.locator("ul.changes .path").allInnerTexts()).map((p) => p.trim());
    expect(paths).toEqual(["many", ...Array.from({ length: 250 }, (_, i) => `many/f${1000 + i}`)]);
    expect(await page.getByRole("button", { name: "Show more" }).count()).toBe(0);
    expect(problems).toEqual([]);
    await context.close();
  }, 180_000);
});
