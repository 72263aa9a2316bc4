// Debian's Chromium (`CHROMIUM`, default /usr/bin/chromium) driven by playwright-core; no
// browser download. Screenshots go to target/ui-screenshots/, or with UPDATE_SCREENSHOTS=1 to
// ui/screenshots/ (committed, linked from the README), so a test run leaves the tree clean.

import { mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
export const SHOTS = process.env.UPDATE_SCREENSHOTS
  ? path.join(here, "../screenshots")
  : path.join(here, "../../target/ui-screenshots");

export async function launch() {
  mkdirSync(SHOTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
}

/** A page that records console errors, failed requests and layout shifts. */
export async function open(browser, width = 1280) {
  const context = await browser.newContext({ viewport: { width, height: width > 600 ? 800 : 844 } });
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (e) => page.problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && page.problems.push(`console: ${m.text()}`));
  page.requests = [];
  page.on("request", (r) => page.requests.push(r.url()));
  await page.addInitScript(() => {
    window.__shift = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (!e.hadRecentInput) window.__shift += e.value;
    }).observe({ type: "layout-shift", buffered: true });
  });
  return page;
}

/** Saves `name-<width>.png`. */
export async function shot(page, name) {
  const width = page.viewportSize().width;
  await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
}
