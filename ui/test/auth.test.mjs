// With API keys required: nothing shows until a key is given, a wrong key is refused with a
// message, and the key never appears in a URL or in the collector's log.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { agentRun, Collector } from "./collector.mjs";
import { launch, open, shot } from "./browser.mjs";

let collector;
let browser;
let traceId;

before(async () => {
  collector = await Collector.start({ auth: true });
  browser = await launch();
  traceId = await agentRun(collector.tracer("keyed-app"), { root: "keyed-run", prompt: "hi", answer: "hello" });
  await collector.waitForTrace(traceId, 2);
});

after(async () => {
  await browser?.close();
  await collector?.stop();
});

test("the UI asks for a key, refuses a wrong one and shows data with the right one", async () => {
  const page = await open(browser, 1280);
  await page.goto(`${collector.api}/traces`);
  const dialog = page.getByRole("dialog", { name: "API key" });
  await dialog.waitFor();
  assert.equal(await page.getByRole("link", { name: "keyed-run" }).count(), 0, "no data without a key");
  await shot(page, "key");
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, "key");
  await page.setViewportSize({ width: 1280, height: 800 });

  await page.getByLabel("Key", { exact: true }).fill("lls_wrong_key_0000000000000000000000000000000");
  await page.getByRole("button", { name: "Use key" }).click();
  await dialog.getByText("That key was refused").waitFor();
  assert.equal(await page.getByRole("link", { name: "keyed-run" }).count(), 0);

  await page.getByLabel("Key", { exact: true }).fill(collector.key);
  await page.getByRole("button", { name: "Use key" }).click();
  await page.getByRole("link", { name: "keyed-run" }).click();
  await page.getByRole("heading", { name: "Messages" }).waitFor();

  // The live page reads with the same key, in a header.
  await page.getByRole("link", { name: "Live" }).click();
  await page.getByRole("status").filter({ hasText: "Live" }).waitFor();

  // Kept for the tab: a reload needs no new key; forgetting it asks again.
  await page.reload();
  await page.getByRole("status").filter({ hasText: "Live" }).waitFor();
  await page.getByRole("button", { name: "Forget key" }).click();
  await dialog.waitFor();

  for (const url of page.requests) assert.ok(!url.includes(collector.key), `key in a URL: ${url}`);
  assert.ok(!collector.log.includes(collector.key), "key in the collector's log");
  assert.deepEqual(
    page.problems.filter((p) => !p.includes("401")),
    [],
  );
  await page.context().close();
});
