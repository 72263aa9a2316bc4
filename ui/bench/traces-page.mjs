// How fast the traces page is usable: for each view, loads it in Debian's Chromium N times (a
// fresh browser context each time, so nothing is cached) and reports, from navigation start,
// when the first trace row is on screen and when the page's requests are done.
//   node ui/bench/traces-page.mjs http://127.0.0.1:4320 [runs]
// With keys required, set LLMSCOPE_API_KEY. Results: benches/README.md#web-ui.

import { chromium } from "playwright-core";

const [base = "http://127.0.0.1:4320", runs = "10"] = process.argv.slice(2);
const VIEWS = [
  ["traces, last 24 hours", "/traces"],
  ["traces, all time", "/traces?range=all"],
  ["traces, a model, all time", "/traces?range=all&model=gpt-4o"],
  ["traces, errors only, last 7 days", "/traces?range=7d&errors_only=true"],
  ["traces, a user, all time", "/traces?range=all&user=user-00042"],
  ["traces, words of the name, all time", "/traces?range=all&q=agent%20support"],
];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const quantile = (xs, q) => xs.toSorted((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)];
console.log("| view | first row visible p50 / p95 ms | requests done p50 / p95 ms | rows |");
console.log("|---|---|---|---|");
for (const [name, path] of VIEWS) {
  const visible = [];
  const idle = [];
  let rows = 0;
  for (let i = 0; i < Number(runs); i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const key = process.env.LLMSCOPE_API_KEY;
    if (key) await context.addInitScript((k) => sessionStorage.setItem("llmscope.key", k), key);
    const page = await context.newPage();
    await page.goto(base + path, { waitUntil: "commit" });
    const row = page.locator('tbody a[href^="/traces/"]').first();
    const empty = page.getByText("No traces match");
    await row.or(empty).waitFor({ timeout: 60_000 });
    visible.push(await page.evaluate(() => performance.now()));
    await page.waitForLoadState("networkidle");
    idle.push(
      await page.evaluate(() => Math.max(...performance.getEntriesByType("resource").map((r) => r.responseEnd))),
    );
    rows = await page.locator('tbody a[href^="/traces/"]').count();
    await context.close();
  }
  const f = (xs) => `${quantile(xs, 0.5).toFixed(0)} / ${quantile(xs, 0.95).toFixed(0)}`;
  console.log(`| ${name} | ${f(visible)} | ${f(idle)} | ${rows} |`);
}
await browser.close();
