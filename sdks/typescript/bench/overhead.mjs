// The SDK's added latency per wrapped, non-streaming chat call (a benchmark, not a test):
//   npm run build && node bench/overhead.mjs
// 1. Through the real `openai` client with an in-memory fetch (no network): wrapped against
//    unwrapped, interleaved, medians of each.
// 2. The SDK's own work alone: a traced `create` whose SDK call returns at once.
// Spans go to a port nobody listens on; they are built and dropped off the call's path.

import OpenAI from "openai";

import * as llmscope from "../dist/esm/index.js";
import { wrapOpenAI } from "../dist/esm/openai.js";

const N = Number(process.env.N ?? 5000);
const body = JSON.stringify({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1741569952,
  model: "gpt-4o-mini-2024-07-18",
  choices: [{ index: 0, message: { role: "assistant", content: "Paris." }, finish_reason: "stop" }],
  usage: { prompt_tokens: 12, completion_tokens: 2, total_tokens: 14 },
});
const fetch = async () =>
  new Response(body, { status: 200, headers: { "content-type": "application/json" } });
const request = {
  model: "gpt-4o-mini",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Capital of France?" },
  ],
};

llmscope.init({ endpoint: "http://127.0.0.1:9", maxQueueSize: 1_000_000 });

const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length * 0.9)];
const us = (ms) => (ms * 1000).toFixed(1);

async function time(fn) {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

const plain = new OpenAI({ apiKey: "k", fetch, maxRetries: 0 });
const wrapped = llmscope.wrap(new OpenAI({ apiKey: "k", fetch, maxRetries: 0 }));
const a = [];
const b = [];
for (let i = 0; i < 500; i++) {
  await plain.chat.completions.create(request);
  await wrapped.chat.completions.create(request);
}
for (let i = 0; i < N; i++) {
  a.push(await time(() => plain.chat.completions.create(request)));
  b.push(await time(() => wrapped.chat.completions.create(request)));
}
console.log(
  `through the client: unwrapped median ${us(median(a))} µs, wrapped ${us(median(b))} µs`,
);

const response = JSON.parse(body);
const resource = { create: async () => response };
const fake = wrapOpenAI({ chat: { completions: resource }, baseURL: "http://x" });
const c = [];
for (let i = 0; i < 500; i++) await fake.chat.completions.create(request);
for (let i = 0; i < N; i++) {
  c.push(await time(() => fake.chat.completions.create(request)));
  await new Promise(setImmediate); // let the span of the call be built, as an app's loop would
}
const d = [];
for (let i = 0; i < N; i++) d.push(await time(() => resource.create(request)));
console.log(
  `the SDK's own work per call on the caller's path: median ${us(median(c) - median(d))} µs, ` +
    `p90 ${us(p90(c) - p90(d))} µs`,
);
await llmscope.shutdown({ timeoutMs: 100 });
