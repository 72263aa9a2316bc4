// The real `openai` and `@anthropic-ai/sdk` packages against the fake provider; spans read back
// from a real LLMScope binary through its API, with tokens, cost and content.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";

import * as llmscope from "../dist/esm/index.js";
import { Collector, inTrace, modelCalls } from "./collector.mjs";
import { ANSWER, startProvider } from "./fake-provider.mjs";

let collector;
let provider;

before(async () => {
  [collector, provider] = await Promise.all([Collector.start(), startProvider()]);
  llmscope.init({ endpoint: collector.endpoint, serviceName: "ts-sdk-tests" });
});

after(async () => {
  await llmscope.shutdown({ timeoutMs: 5_000 });
  await Promise.all([collector.stop(), provider.close()]);
});

const openai = () =>
  llmscope.wrap(new OpenAI({ apiKey: "sk-test", baseURL: `${provider.url}/v1`, maxRetries: 0 }));
const anthropic = () =>
  llmscope.wrap(new Anthropic({ apiKey: "sk-ant-test", baseURL: provider.url, maxRetries: 0 }));

test("a chat call is one span with tokens, cost, content and the context's user", async () => {
  const client = openai();
  assert.ok(client instanceof OpenAI, "the same client type");
  const [traceId, reply] = await llmscope.withContext(
    { user: "u-42", session: "s-7", tags: ["beta"] },
    () =>
      inTrace(llmscope, () =>
        client.chat.completions.create({
          model: "gpt-4o-mini",
          temperature: 0.2,
          messages: [
            { role: "system", content: "Be brief." },
            { role: "user", content: "Capital of France?" },
          ],
        }),
      ),
  );
  assert.equal(reply.choices[0].message.content, ANSWER);
  assert.ok(await llmscope.flush({ timeoutMs: 5_000 }));
  const t = await collector.trace(traceId, (t) => t.spans.length === 2);
  const [call] = modelCalls(t);
  const g = call.gen_ai;
  assert.deepEqual([g.operation, g.provider, g.request_model], ["chat", "openai", "gpt-4o-mini"]);
  assert.equal(g.response_model, "gpt-4o-mini-2024-07-18");
  assert.equal(g.response_id, "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT");
  assert.deepEqual([g.input_tokens, g.output_tokens, g.cache_read_tokens], [1200, 40, 1024]);
  assert.ok(g.cost_usd > 0);
  assert.deepEqual([g.user_id, g.session_id], ["u-42", "s-7"]);
  assert.deepEqual(call.attributes["llmscope.tags"], ["beta"]);
  assert.equal(call.attributes["gen_ai.request.temperature"], 0.2);
  assert.deepEqual(g.input_messages[1], {
    role: "user",
    parts: [{ type: "text", content: "Capital of France?" }],
  });
  assert.equal(g.output_messages[0].parts[0].content, ANSWER);
  assert.equal(call.parent_span_id, t.spans.find((s) => s.name === "test-root").span_id);
});

test("a stream gets its usage, which the caller never sees; a stream broken off still ends", async () => {
  const client = openai();
  const [traceId, text] = await inTrace(llmscope, async () => {
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      stream: true,
      messages: [{ role: "user", content: "Capital of France?" }],
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0].delta.content ?? "";
    return text;
  });
  assert.equal(text, ANSWER);
  const [brokenTrace] = await inTrace(llmscope, async () => {
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      stream: true,
      messages: [{ role: "user", content: "Capital of France?" }],
    });
    let n = 0;
    for await (const _ of stream) if (++n === 2) break;
  });
  assert.ok(await llmscope.flush({ timeoutMs: 5_000 }));
  const [full] = modelCalls(await collector.trace(traceId, (t) => t.spans.length === 2));
  assert.deepEqual([full.gen_ai.input_tokens, full.gen_ai.output_tokens], [20, 7]);
  assert.equal(full.gen_ai.output_messages[0].parts[0].content, ANSWER);
  assert.equal(full.attributes["llmscope.usage.estimated"], undefined);
  const [cut] = modelCalls(await collector.trace(brokenTrace, (t) => t.spans.length === 2));
  assert.equal(cut.attributes["llmscope.usage.estimated"], true);
  assert.equal(cut.gen_ai.output_messages[0].parts[0].content, "The");
});

test("embeddings and the responses API, whole and streamed", async () => {
  const client = openai();
  const [traceId] = await inTrace(llmscope, async () => {
    await client.embeddings.create({ model: "text-embedding-3-small", input: "hello" });
    await client.responses.create({ model: "gpt-4o-mini", input: "Capital of France?" });
    const stream = await client.responses.create({
      model: "gpt-4o-mini",
      input: "Capital of France?",
      stream: true,
    });
    let text = "";
    for await (const e of stream) if (e.type === "response.output_text.delta") text += e.delta;
    assert.equal(text, ANSWER);
  });
  assert.ok(await llmscope.flush({ timeoutMs: 5_000 }));
  const calls = modelCalls(await collector.trace(traceId, (t) => t.spans.length === 4));
  const [embedding] = calls.filter((c) => c.gen_ai.operation === "embeddings");
  assert.equal(embedding.gen_ai.input_tokens, 8);
  const chats = calls.filter((c) => c.gen_ai.operation === "chat");
  assert.equal(chats.length, 2);
  for (const { gen_ai: g } of chats) {
    assert.deepEqual([g.input_tokens, g.output_tokens], [36, 87]);
    assert.equal(g.response_id, "resp_67ccd2bed1ec8190b14f964abc054267");
    assert.equal(g.output_messages[0].parts[0].content, ANSWER);
  }
});

test("Anthropic messages, whole and streamed, count cache reads and writes as input", async () => {
  const client = anthropic();
  assert.ok(client instanceof Anthropic);
  const [traceId] = await inTrace(llmscope, async () => {
    const m = await client.messages.create({
      model: "claude-sonnet-4-20250514",
      max_tokens: 100,
      system: "Be brief.",
      messages: [{ role: "user", content: "Capital of France?" }],
    });
    assert.equal(m.content[0].text, ANSWER);
    const stream = await client.messages.create({
      model: "claude-sonnet-4-20250514",
      max_tokens: 100,
      stream: true,
      messages: [{ role: "user", content: "Capital of France?" }],
    });
    let text = "";
    for await (const e of stream) if (e.type === "content_block_delta") text += e.delta.text;
    assert.equal(text, ANSWER);
  });
  assert.ok(await llmscope.flush({ timeoutMs: 5_000 }));
  const calls = modelCalls(await collector.trace(traceId, (t) => t.spans.length === 3));
  const [whole, streamed] = calls.sort((a, b) => a.start_time.localeCompare(b.start_time));
  assert.deepEqual(
    [whole.gen_ai.provider, whole.gen_ai.input_tokens, whole.gen_ai.cache_read_tokens],
    ["anthropic", 1000, 700],
  );
  assert.equal(whole.gen_ai.output_tokens, 30);
  assert.deepEqual(whole.gen_ai.system_instructions, [{ type: "text", content: "Be brief." }]);
  assert.deepEqual([streamed.gen_ai.input_tokens, streamed.gen_ai.output_tokens], [25, 12]);
  assert.equal(streamed.gen_ai.output_messages[0].parts[0].content, ANSWER);
});

test("a failed call throws as before and its span says why", async () => {
  const client = openai();
  let thrown;
  const [traceId] = await inTrace(llmscope, async () => {
    try {
      await client.chat.completions.create({ model: "fail", messages: [] });
    } catch (e) {
      thrown = e;
    }
  });
  assert.ok(thrown instanceof OpenAI.BadRequestError);
  assert.ok(await llmscope.flush({ timeoutMs: 5_000 }));
  const t = await collector.trace(traceId, (t) => t.spans.length === 2);
  const failed = t.spans.find((s) => s.name === "chat fail");
  assert.equal(failed.status, "error");
  assert.equal(failed.attributes["error.type"], "BadRequestError");
});
