// At exit and on SIGTERM the spans of a child process still arrive; a throttled export waits as
// `Retry-After` says.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import * as llmscope from "../dist/esm/index.js";
import { Collector } from "./collector.mjs";
import { startProvider } from "./fake-provider.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
let collector;
let provider;

before(async () => {
  [collector, provider] = await Promise.all([Collector.start(), startProvider()]);
});

after(async () => {
  await Promise.all([collector.stop(), provider.close()]);
});

// The child: one wrapped call in an observed span; prints its trace id, then ends as `how` says.
const CHILD = `
import OpenAI from "openai";
import { trace } from "@opentelemetry/api";
import * as llmscope from ${JSON.stringify(path.join(here, "../dist/esm/index.js"))};
const [endpoint, provider, how] = process.argv.slice(1);
llmscope.init({ endpoint, serviceName: "ts-exit", scheduleDelayMs: 60000 });
const client = llmscope.wrap(new OpenAI({ apiKey: "k", baseURL: provider + "/v1", maxRetries: 0 }));
await llmscope.observe("child-root", async () => {
  process.stdout.write(trace.getActiveSpan().spanContext().traceId + "\\n");
  await client.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });
})();
await new Promise(setImmediate);
if (how === "sigterm") {
  process.kill(process.pid, "SIGTERM");
  setInterval(() => {}, 1000); // only the signal ends this process
}
`;

function child(how) {
  const p = spawn(
    process.execPath,
    ["--input-type=module", "-e", CHILD, collector.endpoint, provider.url, how],
    { cwd: path.join(here, ".."), stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  p.stdout.on("data", (d) => (out += d));
  return new Promise((resolve) => p.on("exit", (code, signal) => resolve({ out, code, signal })));
}

for (const how of ["exit", "sigterm"]) {
  test(`a span ended just before the process ${how === "exit" ? "exits" : "gets SIGTERM"} arrives`, async () => {
    const { out, code, signal } = await child(how);
    if (how === "sigterm") assert.equal(signal, "SIGTERM", "the default action follows the flush");
    else assert.equal(code, 0);
    const traceId = out.trim();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const t = await collector.trace(traceId, (t) => t.spans.length === 2);
    assert.deepEqual(t.spans.map((s) => s.name).sort(), ["chat gpt-4o-mini", "child-root"]);
  });
}

test("a throttled export waits as Retry-After says, then delivers gzip protobuf", async () => {
  const arrivals = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      arrivals.push({ at: performance.now(), headers: req.headers });
      if (arrivals.length === 1) res.writeHead(429, { "retry-after": "2" }).end();
      else res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    llmscope.init({
      endpoint: `http://127.0.0.1:${server.address().port}`,
      exportTimeoutMs: 10_000,
    });
    const before = llmscope.stats().spansExported ?? 0;
    llmscope.observe("step", () => undefined)();
    assert.ok(await llmscope.flush({ timeoutMs: 10_000 }));
    assert.equal(arrivals.length, 2);
    assert.equal(arrivals[0].headers["content-type"], "application/x-protobuf");
    assert.equal(arrivals[0].headers["content-encoding"], "gzip");
    // The exporter's own first backoff is about 1 s; Retry-After asked for 2.
    assert.ok(arrivals[1].at - arrivals[0].at >= 1_900, `${arrivals[1].at - arrivals[0].at} ms`);
    assert.equal((llmscope.stats().spansExported ?? 0) - before, 1);
  } finally {
    await llmscope.shutdown({ timeoutMs: 2_000 });
    server.close();
  }
});
