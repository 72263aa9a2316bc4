// Delivery: the app never waits for or hears about the collector; events and scores arrive
// joined to their trace.

import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";

import { trace } from "@opentelemetry/api";
import OpenAI from "openai";

import * as llmscope from "../dist/esm/index.js";
import { Collector, freePort, inTrace, modelCalls } from "./collector.mjs";
import { startProvider } from "./fake-provider.mjs";

let provider;

before(async () => {
  provider = await startProvider();
});

after(async () => {
  await provider.close();
});

const openai = () =>
  llmscope.wrap(new OpenAI({ apiKey: "sk-test", baseURL: `${provider.url}/v1`, maxRetries: 0 }));

test("with the collector down calls work, flush is bounded, and the spans arrive later", async () => {
  const port = await freePort();
  llmscope.init({ endpoint: `http://127.0.0.1:${port}`, exportTimeoutMs: 30_000 });
  const started = performance.now();
  const [traceId, reply] = await inTrace(llmscope, () =>
    openai().chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    }),
  );
  assert.ok(reply.choices[0].message.content);
  assert.ok(performance.now() - started < 1_000, "the call did not wait for the collector");
  const flushing = performance.now();
  assert.equal(await llmscope.flush({ timeoutMs: 1_000 }), false);
  const took = performance.now() - flushing;
  assert.ok(took >= 900 && took < 2_000, `flush took ${took} ms`);
  // The collector comes up on that address: the exporter's retries deliver the waiting spans.
  const collector = await Collector.start({ httpPort: port });
  try {
    assert.ok(await llmscope.flush({ timeoutMs: 30_000 }));
    const t = await collector.trace(traceId, (t) => t.spans.length === 2);
    assert.equal(modelCalls(t).length, 1);
  } finally {
    await llmscope.shutdown({ timeoutMs: 5_000 });
    await collector.stop();
  }
});

test("every span is counted once; a full queue drops new spans, counted, and never blocks", async () => {
  // A collector that takes connections and never answers: the first batch waits out the export
  // timeout, the next fills the queue, the rest are dropped at once.
  const sockets = [];
  const silent = net.createServer((socket) => sockets.push(socket));
  await new Promise((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const port = silent.address().port;
  llmscope.init({ endpoint: `http://127.0.0.1:${port}`, maxQueueSize: 16, exportTimeoutMs: 500 });
  const before = llmscope.stats();
  const step = llmscope.observe("step", () => undefined);
  for (let i = 0; i < 200; i++) step();
  await llmscope.shutdown({ timeoutMs: 2_000 });
  const counts = llmscope.stats();
  const delta = (k) => (counts[k] ?? 0) - (before[k] ?? 0);
  const deadline = Date.now() + 10_000;
  while (delta("spansExported") + delta("spansFailed") + delta("spansDropped") < 200) {
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
    Object.assign(counts, llmscope.stats());
  }
  assert.equal(delta("spansExported") + delta("spansFailed") + delta("spansDropped"), 200);
  assert.equal(delta("spansExported"), 0);
  assert.ok(delta("spansDropped") >= 200 - 2 * 16, JSON.stringify(counts));
  silent.close();
  for (const socket of sockets) socket.destroy();
});

test("events and scores read back beside their trace; bad scores are reported, not thrown", async () => {
  const collector = await Collector.start();
  llmscope.init({ endpoint: collector.endpoint, serviceName: "ts-events" });
  try {
    let spanId;
    const [traceId] = await inTrace(llmscope, async () => {
      spanId = trace.getActiveSpan().spanContext().spanId;
      await openai().chat.completions.create({
        model: "gpt-4o-scored",
        messages: [{ role: "user", content: "hi" }],
      });
      llmscope.event("cart.checked_out", { items: 3 });
    });
    llmscope.score(traceId, "helpfulness", 0.5, { comment: "fine" });
    llmscope.score(traceId, "resolved", true, { spanId });
    const errors = llmscope.stats()["errors.score"] ?? 0;
    llmscope.score("nope", "x", 1);
    llmscope.score(traceId, "x", Number.NaN);
    llmscope.score(traceId, "", 1);
    assert.equal(llmscope.stats()["errors.score"], errors + 3);
    assert.ok(await llmscope.flush({ timeoutMs: 5_000 }));
    const t = await collector.trace(
      traceId,
      (t) => t.spans.length === 2 && t.scores.length === 2 && t.events.length === 1,
    );
    assert.deepEqual(
      [t.events[0].name, t.events[0].span_id, t.events[0].attributes.items],
      ["cart.checked_out", spanId, 3],
    );
    const scores = Object.fromEntries(t.scores.map((s) => [s.name, s]));
    assert.deepEqual(
      [scores.helpfulness.value, scores.helpfulness.comment, scores.helpfulness.span_id],
      [0.5, "fine", null],
    );
    assert.deepEqual([scores.resolved.value, scores.resolved.span_id], [true, spanId]);
    const summary = await collector.get(
      "/api/v1/analytics/summary?group_by=model&model=gpt-4o-scored&score=helpfulness",
    );
    assert.deepEqual(summary.body.groups[0].score, { name: "helpfulness", count: 1, mean: 0.5 });
  } finally {
    await llmscope.shutdown({ timeoutMs: 5_000 });
    await collector.stop();
  }
});
