// What the browser scenarios share: the harness (JSON lines on stdout, answers on stdin),
// Chromium launched the way this machine needs it, pages that record problems (page errors,
// console errors, unexpected dialogs), and small helpers.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

export const T = 20_000;
export const SHOTS = process.env.PLEXUS_WEB_SHOTS;

let nextId = 1;
const waiting = new Map();
createInterface({ input: process.stdin }).on("line", (line) => {
  const m = JSON.parse(line);
  waiting.get(m.id)?.(m);
  waiting.delete(m.id);
});

/// Ask the harness (e2e/tests/web*.rs) to do something only it can.
export function harness(request) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    waiting.set(id, (m) => (m.err ? reject(new Error(m.err)) : resolve(m.ok)));
    process.stdout.write(`${JSON.stringify({ id, ...request })}\n`);
  });
}

export const log = (...a) => console.error("[web]", ...a);

export function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

export const browser = await chromium.launch({
  executablePath: process.env.PLEXUS_CHROMIUM,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const problems = [];
const pages = [];
let allowDialog = null;

/// Accept the next dialogs with this answer (null: any dialog is a problem).
export function allowDialogs(answer) {
  allowDialog = answer;
}

export async function newPage(name, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  pages.push([name, page]);
  page.setDefaultTimeout(T);
  page.on("pageerror", (e) => problems.push(`${name}: page error ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(m.text())) {
      problems.push(`${name}: console error ${m.text()}`);
    }
  });
  // Only the dialogs the scenario opens itself (force-release asks why); anything else — an
  // alert from a message body — is an injection.
  page.on("dialog", async (d) => {
    if (allowDialog) await d.accept(allowDialog);
    else {
      problems.push(`${name}: unexpected ${d.type()} "${d.message()}"`);
      await d.dismiss();
    }
  });
  return page;
}

export async function see(page, selector, text) {
  await page.locator(selector).filter({ hasText: text }).first().waitFor();
}

/// Join by invite and wait for the mesh key (a key-holding member must be online).
export async function join(page, url, code, name) {
  await page.goto(url);
  await page.fill("#invite-code", code);
  await page.fill("#display-name", name);
  await page.click("#join");
  await page.locator("#connection.online").waitFor();
  await page.locator("#banner.hidden").waitFor({ state: "attached" });
}

export async function shot(page, name) {
  await page.evaluate(() => document.getElementById("toast")?.classList.add("hidden"));
  await page.waitForTimeout(150); // let the last frame paint
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

export async function view(page, route) {
  await page.click(`nav a[data-route="${route}"]`);
}

export async function assertSealed(text) {
  const tables = await harness({ do: "db_search", needle: text });
  check(tables.length === 0, `"${text}" is readable in the database (${tables})`);
}

/// Run a scenario: on success tell the harness `done`; on failure screenshot every page.
export async function run(scenario) {
  try {
    await scenario();
    check(problems.length === 0, `problems in the pages:\n${problems.join("\n")}`);
    log("all good");
    process.stdout.write(`${JSON.stringify({ done: true })}\n`);
    await browser.close();
    process.exit(0);
  } catch (e) {
    log("FAILED:", e.stack ?? e.message);
    if (problems.length) log(problems.join("\n"));
    for (const [name, page] of pages) {
      await page.screenshot({ path: `${SHOTS}/failure-${name}.png`, fullPage: true }).catch(() => undefined);
      const state = await page.locator("#connection").textContent().catch(() => "?");
      const banner = await page.locator("#banner").textContent().catch(() => "?");
      log(`${name}: connection ${state}; banner ${banner}`);
    }
    await browser.close().catch(() => undefined);
    process.exit(1);
  }
}
