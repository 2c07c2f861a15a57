// The browser half of `plexus-web-bench` (benches/src/web.rs): join the mesh, open the lobby,
// report load time, page weight and memory once every session is listed, then, given the
// status changes the bench made (and when), report how long each took to show in the DOM.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.PLEXUS_CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
page.setDefaultTimeout(120_000);
const cdp = await page.context().newCDPSession(page);
await cdp.send("Performance.enable");

const started = Date.now();
await page.goto(process.env.PLEXUS_WEB_URL);
await page.fill("#invite-code", process.env.PLEXUS_WEB_CODE);
await page.fill("#display-name", "bench-viewer");
await page.click("#join");
const expect = process.env.PLEXUS_WEB_EXPECT;
try {
  await page.waitForFunction((n) => document.getElementById("lobby-counts")?.textContent?.startsWith(`${n} online`), expect);
} catch (e) {
  await page.screenshot({ path: "/tmp/plexus-web-bench-failure.png" });
  console.error("lobby never listed every session:", await page.locator("#lobby-counts").textContent().catch(() => "?"));
  throw e;
}
const loadedMs = Date.now() - started;
console.error(`lobby listed every session after ${loadedMs} ms`);
await page.click('nav a[data-route="tasks"]');
await page.waitForFunction((n) => document.querySelectorAll("article.task").length >= n, Number(process.env.PLEXUS_WEB_TASKS));
await page.click('nav a[data-route="lobby"]');
await page.waitForFunction((n) => document.getElementById("lobby-counts")?.textContent?.startsWith(`${n} online`), expect);

// Every row the lobby puts in (it replaces a session's row when its status changes), with when.
await page.evaluate(() => {
  window.__seen = [];
  new MutationObserver((records) => {
    const t = Date.now();
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (n instanceof HTMLElement && n.dataset.session) window.__seen.push({ session: n.dataset.session, cls: n.className, t });
      }
    }
  }).observe(document.getElementById("main"), { childList: true, subtree: true });
});

const weight = await page.evaluate(() => {
  const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
  return entries.filter((e) => !e.name.includes("/ws")).reduce((sum, e) => sum + (e.transferSize || 0), 0);
});
const metric = async (name) => (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === name)?.value ?? 0;
const heap = await metric("JSHeapUsedSize");
const nodes = await metric("Nodes");
process.stdout.write(`${JSON.stringify({ ready_ms: loadedMs, page_weight_bytes: weight, js_heap_bytes: heap, dom_nodes: nodes })}\n`);

console.error("waiting for the changes");
const line = await new Promise((resolve) => createInterface({ input: process.stdin }).once("line", resolve));
const { changes } = JSON.parse(line);
const seen = await page.evaluate(() => window.__seen);
const lat = [];
let missed = 0;
for (const c of changes) {
  const hit = seen.find((s) => s.session === c.session && s.cls.split(" ").includes(c.status) && s.t >= c.t0);
  if (hit) lat.push(hit.t - c.t0);
  else missed++;
}
lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.round((lat.length - 1) * p))] : 0);
const heapAfter = await metric("JSHeapUsedSize");
process.stdout.write(`${JSON.stringify({ count: lat.length, missed, p50: q(0.5), p99: q(0.99), max: lat.at(-1) ?? 0, js_heap_after_bytes: heapAfter })}\n`);
await browser.close();
process.exit(0);
