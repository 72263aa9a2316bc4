// Every page in a real browser against a real collector fed by a real OpenTelemetry SDK, at
// 1280 and 390 px wide, with screenshots.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { agentRun, Collector } from "./collector.mjs";
import { launch, open, shot } from "./browser.mjs";

const EMAIL = "jane.doe@example.com";
let collector;
let browser;
let tracer;
const traces = {};
/** What this file's calls add up to: the usage page must show exactly these totals. */
const sent = { requests: 0, errors: 0, input: 0, output: 0 };

function run(options) {
  sent.requests += 1;
  sent.errors += options.error ? 1 : 0;
  sent.input += options.input ?? 120;
  sent.output += options.output ?? 40;
  return agentRun(tracer, options);
}

before(async () => {
  // Alert rules evaluated every second, so a transition shows up while the test runs.
  collector = await Collector.start({
    edit: (text) => text.replace("    query_store: sqlite\n", "    query_store: sqlite\n    evaluation_interval: 1s\n"),
  });
  browser = await launch();
  tracer = collector.tracer("support-bot");
  traces.ok = await run({
    root: "answer-ticket",
    prompt: `Please email me at ${EMAIL} about my order`,
    answer: "Of course, I will write to you today.",
    input: 120,
    output: 40,
  });
  traces.failed = await run({
    root: "summarize-thread",
    prompt: "Summarize",
    error: true,
    input: 30,
    output: 0,
  });
  await collector.waitForTrace(traces.ok, 2);
  await collector.waitForTrace(traces.failed, 2);
});

after(async () => {
  await browser?.close();
  await collector?.stop();
});

for (const width of [1280, 390]) {
  test(`traces list and trace page at ${width} px`, async () => {
    const page = await open(browser, width);
    await page.goto(`${collector.api}/`);
    const ticket = page.getByRole("link", { name: "answer-ticket" });
    await ticket.waitFor();
    await page.getByRole("link", { name: "summarize-thread" }).waitFor();
    const row = page.locator("tr", { has: ticket });
    assert.match(await row.innerText(), /\$0\.0000/, "a cost column");
    const failed = page.locator("tr", { has: page.getByRole("link", { name: "summarize-thread" }) });
    assert.match(await failed.innerText(), /error/);
    assert.ok((await page.evaluate(() => window.__shift)) < 0.1, "no layout shift on load");
    await shot(page, "traces");

    // A filter is in the URL, so the view can be shared.
    await page.getByLabel("Model").fill("no-such-model");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/model=no-such-model/);
    await page.getByText("No traces match").waitFor();
    await page.goBack();
    // Errors only, and a user: the failed trace alone, then the user's.
    await page.getByLabel("Errors only").check();
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/errors_only=true/);
    await page.getByText("1 trace", { exact: true }).waitFor();
    assert.equal(await page.getByRole("link", { name: "summarize-thread" }).count(), 1);
    assert.equal(await ticket.count(), 0);
    await page.goBack();
    await page.getByLabel("User").fill("user-1");
    await page.getByLabel("Session").fill("");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/user=user-1/);
    await page.getByText("2 traces", { exact: true }).waitFor();
    await page.goto(`${collector.api}/traces?user=someone-else`);
    await page.getByText("No traces match").waitFor();
    await page.goBack();
    // Words of span names, any case: the root `answer-ticket`.
    await page.getByLabel("Words in span names").fill("Ticket answer");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/q=Ticket/);
    await page.getByText("1 trace", { exact: true }).waitFor();
    assert.equal(await ticket.count(), 1);
    await page.goBack();
    await ticket.click();

    await page.waitForURL(new RegExp(`/traces/${traces.ok}$`));
    await page.getByRole("heading", { name: "Messages" }).waitFor();
    const detail = page.getByRole("region", { name: "Span detail" });
    const text = await detail.innerText();
    assert.match(text, /USER/i);
    assert.match(text, /Of course, I will write to you today\./);
    assert.match(text, /Input tokens\s*120/);
    assert.match(text, /Output tokens\s*40/);
    assert.match(text, /Cost\s*\$0\.0000[1-9]/);
    assert.match(text, /Finish reason\s*stop/);
    const redacted = detail.locator("mark.redacted");
    assert.equal(await redacted.count(), 1);
    assert.equal(await redacted.innerText(), "[REDACTED:EMAIL]");
    assert.ok(!(await page.content()).includes(EMAIL), "the address never reaches the page");
    await page.getByText("Raw attributes").click();
    await shot(page, "trace");

    // Reloaded from its own URL, the trace page comes back (shareable link).
    await page.reload();
    await page.getByRole("heading", { name: "Messages" }).waitFor();
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
}

test("a new call appears on the live page without a reload", async () => {
  for (const width of [1280, 390]) {
    const page = await open(browser, width);
    await page.goto(`${collector.api}/live`);
    await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
    const root = `live-call-${width}`;
    const traceId = await run({ root, prompt: "hello", answer: "hi there", model: "gpt-4o" });
    const row = page.locator("tbody tr", { has: page.locator(`a[href="/traces/${traceId}"]`) });
    await row.waitFor();
    assert.match(await row.innerText(), /gpt-4o/);
    assert.match(await page.locator(".live-controls").innerText(), /1 received · 0 dropped/);

    // Paused, a call is held, and shown on resume.
    await page.getByRole("button", { name: "Pause" }).click();
    const held = await run({ root: `${root}-held`, prompt: "again", answer: "ok", model: "gpt-4o" });
    await page.getByText("1 held while paused").waitFor();
    assert.equal(await page.locator(`a[href="/traces/${held}"]`).count(), 0);
    await shot(page, "live");
    await page.getByRole("button", { name: "Resume" }).click();
    await page.locator(`a[href="/traces/${held}"]`).waitFor();
    // A filter the stream refuses stops it with the reason, rather than retrying.
    await page.goto(`${collector.api}/live?errors_only=maybe`);
    await page.getByRole("status").filter({ hasText: "Stopped: errors_only" }).waitFor();
    assert.deepEqual(
      page.problems.filter((p) => !p.includes("status of 400")),
      [],
    );
    await page.context().close();
  }
});

test("the usage page shows the totals of the calls sent", async () => {
  // Every call is stored (and counted by the API) before the page is asked; `to` varies so that
  // no answer comes from the API's cache.
  const summary = async () => {
    const to = new Date(Date.now() + 3600e3).toISOString();
    const { body } = await collector.get(`/api/v1/analytics/summary?group_by=model&to=${to}`);
    return body.groups;
  };
  let groups = await summary();
  for (let i = 0; i < 200 && groups.reduce((a, g) => a + g.requests, 0) < sent.requests; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    groups = await summary();
  }
  const cost = groups.reduce((a, g) => a + g.cost_usd, 0);
  assert.ok(cost > 0);
  for (const width of [1280, 390]) {
    const page = await open(browser, width);
    await page.goto(`${collector.api}/usage?range=30d`);
    const totals = page.getByLabel("Totals");
    await totals.getByText("Requests").waitFor();
    const text = await totals.innerText();
    assert.match(text, new RegExp(`Requests\\s*${sent.requests}\\s`));
    assert.match(text, new RegExp(`Errors\\s*${sent.errors} \\(`));
    assert.match(text, new RegExp(`Input tokens\\s*${sent.input.toLocaleString("en-US")}\\s`));
    assert.match(text, new RegExp(`Output tokens\\s*${sent.output.toLocaleString("en-US")}\\s`));
    assert.ok(text.includes(`Cost\n$${cost.toPrecision(3)}`), `${text} has the cost ${cost}`);
    const table = await page.locator("tbody").innerText();
    assert.match(table, /gpt-4o-mini/);
    assert.ok(await page.getByRole("img", { name: /Cost over time/ }).isVisible());
    await shot(page, "usage");
    // Latency percentiles over time, one line per group.
    await page.getByLabel("Chart").selectOption("p95");
    await page.waitForURL(/metric=p95/);
    const chart = page.getByRole("img", { name: /Latency p95 over time by model/ });
    await chart.waitFor();
    const models = await page.locator("tbody tr").count();
    assert.equal(await page.locator("polyline").count(), Math.min(models, 5), "a line per model");
    assert.match(await page.locator(".legend").innerText(), /gpt-4o-mini/);
    await shot(page, "usage-latency");
    assert.deepEqual(page.problems, []);
    await page.context().close();
  }
});

test("anomalies and alerts pages list, and a rule is created from the page", async () => {
  const page = await open(browser, 1280);
  await page.goto(`${collector.api}/anomalies`);
  await page.getByRole("heading", { name: "Anomalies" }).waitFor();
  await page
    .getByText(/No anomalies in this range|trace/)
    .first()
    .waitFor();
  await shot(page, "anomalies");
  await page.getByRole("link", { name: "Alerts" }).click();
  await page.getByText("No rules yet.").waitFor();
  await page.getByLabel(/Rule \(JSON/).fill(
    JSON.stringify({
      name: "any errors",
      metric: "errors",
      group_by: ["model"],
      window: "1h",
      op: ">",
      threshold: 0,
    }),
  );
  await page.getByRole("button", { name: "Save rule" }).click();
  // The rule may fire at once (errors over 0) and be listed again among the firing alerts.
  await page.getByRole("cell", { name: "any errors" }).first().waitFor();
  await page
    .getByLabel(/Rule \(JSON/)
    .fill(JSON.stringify({ name: "bad", metric: "errors", window: "-1m", op: ">", threshold: 5 }));
  await page.getByRole("button", { name: "Save rule" }).click();
  await page.getByRole("alert").filter({ hasText: "window" }).waitFor();
  const { body } = await collector.get("/api/v1/alert-rules");
  assert.deepEqual(
    body.rules.map((r) => r.name),
    ["any errors"],
  );
  // The rule fires for the model of the failed call (evaluated every second); its transition
  // links to that model's traces in the rule's window before it.
  const firing = page.getByRole("row").filter({ hasText: "model=gpt-4o-mini" }).filter({ hasText: "firing" });
  for (let i = 0; i < 100 && !(await firing.count()); i++) {
    await page.waitForTimeout(200);
    await page.reload();
    await page.getByRole("heading", { name: "Recent transitions" }).waitFor();
  }
  await shot(page, "alerts");
  // Both pages at 390 px too.
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "alerts");
  await page.goto(`${collector.api}/anomalies`);
  await page.getByRole("heading", { name: "Anomalies" }).waitFor();
  await shot(page, "anomalies");
  await page.goto(`${collector.api}/alerts`);
  await firing.first().waitFor();
  await page.setViewportSize({ width: 1280, height: 800 });
  await firing.first().getByRole("link", { name: "traces" }).click();
  await page.waitForURL(/\/traces\?.*from=.*model=gpt-4o-mini/);
  await page.getByRole("link", { name: "summarize-thread" }).waitFor();
  assert.equal(await page.getByLabel("Time range").inputValue(), "custom");
  // The refused rule's 400 is the one failed request.
  assert.deepEqual(
    page.problems.filter((p) => !p.includes("status of 400")),
    [],
  );
  await page.context().close();
});

test("pages are keyboard navigable and every control is labelled", async () => {
  const page = await open(browser, 1280);
  await page.goto(`${collector.api}/traces`);
  await page.getByRole("link", { name: "answer-ticket" }).waitFor();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
  await page.keyboard.press("Enter");
  for (const path of ["/traces", "/live", "/usage", "/anomalies", "/alerts", `/traces/${traces.ok}`]) {
    await page.goto(`${collector.api}${path}`);
    await page.locator("main h1").waitFor();
    // Loaded: its requests done (the live page's stream never ends: connected instead).
    if (path === "/live") await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
    else await page.waitForLoadState("networkidle");
    assert.ok((await page.evaluate(() => window.__shift)) < 0.1, `${path}: no layout shift on load`);
    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll("main input, main select, main textarea")]
        .filter((e) => e.labels.length === 0 && !e.getAttribute("aria-label"))
        .map((e) => e.outerHTML),
    );
    assert.deepEqual(unlabelled, [], path);
  }
  // Keyboard only: tab to the first trace link and open it.
  await page.goto(`${collector.api}/traces`);
  const link = page.getByRole("link", { name: "answer-ticket" });
  await link.waitFor();
  for (let i = 0; i < 40 && !(await link.evaluate((e) => e === document.activeElement)); i++)
    await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/traces\/[0-9a-f]{32}$/);
  await page.context().close();
});
