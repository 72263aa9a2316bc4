// A fake OpenAI and Anthropic API on loopback, answering with the providers' documented response
// shapes (JSON and server-sent events), for the real `openai` and `@anthropic-ai/sdk` packages.
// The same shapes as the Python SDK's tests (sdks/python/tests/fake_provider.py).

import http from "node:http";

export const ANSWER = "The capital of France is Paris.";
const WORDS = ["The", " capital", " of", " France", " is", " Paris", "."];

function chatCompletion(body) {
  const tools = body.tools?.length > 0;
  const message = tools
    ? {
        role: "assistant",
        content: null,
        tool_calls: [
          {
            id: "call_abc123",
            type: "function",
            function: { name: "get_weather", arguments: '{"city": "Paris"}' },
          },
        ],
      }
    : { role: "assistant", content: ANSWER, refusal: null };
  return {
    id: "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    object: "chat.completion",
    created: 1741569952,
    model: "gpt-4o-mini-2024-07-18",
    choices: [{ index: 0, message, logprobs: null, finish_reason: tools ? "tool_calls" : "stop" }],
    usage: {
      prompt_tokens: 1200,
      completion_tokens: 40,
      total_tokens: 1240,
      prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0 },
    },
    service_tier: "default",
    system_fingerprint: "fp_06737a9306",
  };
}

function chatChunks(body) {
  const base = {
    id: "chatcmpl-stream-1",
    object: "chat.completion.chunk",
    created: 1741569952,
    model: "gpt-4o-mini-2024-07-18",
    system_fingerprint: "fp_06737a9306",
  };
  const choice = (delta, finish_reason = null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason }],
  });
  const chunks = [choice({ role: "assistant", content: "" })];
  for (const w of WORDS) chunks.push(choice({ content: w }));
  chunks.push(choice({}, "stop"));
  if (body.stream_options?.include_usage) {
    chunks.push({
      ...base,
      choices: [],
      usage: {
        prompt_tokens: 20,
        completion_tokens: 7,
        total_tokens: 27,
        prompt_tokens_details: { cached_tokens: 0 },
        completion_tokens_details: { reasoning_tokens: 0 },
      },
    });
  }
  return chunks;
}

function message() {
  return {
    id: "msg_01XFDUDYJgAACzvnptvVoYEL",
    type: "message",
    role: "assistant",
    model: "claude-sonnet-4-20250514",
    content: [{ type: "text", text: ANSWER }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage: {
      input_tokens: 100,
      cache_creation_input_tokens: 200,
      cache_read_input_tokens: 700,
      output_tokens: 30,
    },
  };
}

function messageEvents() {
  const start = {
    ...message(),
    content: [],
    stop_reason: null,
    usage: {
      input_tokens: 25,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 1,
    },
  };
  return [
    { type: "message_start", message: start },
    { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    ...WORDS.map((w) => ({
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text: w },
    })),
    { type: "content_block_stop", index: 0 },
    {
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: { output_tokens: 12 },
    },
    { type: "message_stop" },
  ];
}

function response() {
  return {
    id: "resp_67ccd2bed1ec8190b14f964abc054267",
    object: "response",
    created_at: 1741476542,
    status: "completed",
    model: "gpt-4o-mini-2024-07-18",
    output: [
      {
        type: "message",
        id: "msg_67ccd2bf17f0819081ff3bb2cf6508e6",
        status: "completed",
        role: "assistant",
        content: [{ type: "output_text", text: ANSWER, annotations: [] }],
      },
    ],
    parallel_tool_calls: true,
    tool_choice: "auto",
    tools: [],
    usage: {
      input_tokens: 36,
      input_tokens_details: { cached_tokens: 0 },
      output_tokens: 87,
      output_tokens_details: { reasoning_tokens: 0 },
      total_tokens: 123,
    },
  };
}

function responseEvents() {
  const done = response();
  const started = { ...done, status: "in_progress", output: [], usage: null };
  return [
    { type: "response.created", sequence_number: 0, response: started },
    ...WORDS.map((w, i) => ({
      type: "response.output_text.delta",
      sequence_number: i + 1,
      item_id: "msg_1",
      output_index: 0,
      content_index: 0,
      delta: w,
      logprobs: [],
    })),
    { type: "response.completed", sequence_number: 9, response: done },
  ];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sse(res, events, named) {
  res.writeHead(200, { "content-type": "text/event-stream" });
  for (const e of events) {
    res.write((named ? `event: ${e.type}\n` : "") + `data: ${JSON.stringify(e)}\n\n`);
    await sleep(5);
  }
  if (!named) res.write("data: [DONE]\n\n");
  res.end();
}

function json(res, status, payload) {
  const data = JSON.stringify(payload);
  res.writeHead(status, { "content-type": "application/json", "content-length": data.length });
  res.end(data);
}

export async function startProvider() {
  const requests = [];
  const server = http.createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const body = raw ? JSON.parse(raw) : {};
      requests.push({ path: req.url, body });
      const path = req.url ?? "";
      if (body.model === "fail") {
        json(res, 400, {
          error: {
            message: "The model `fail` does not exist",
            type: "invalid_request_error",
            code: "model_not_found",
          },
        });
      } else if (path.endsWith("/chat/completions")) {
        if (body.stream) void sse(res, chatChunks(body), false);
        else json(res, 200, chatCompletion(body));
      } else if (path.endsWith("/responses")) {
        if (body.stream) void sse(res, responseEvents(), true);
        else json(res, 200, response());
      } else if (path.endsWith("/embeddings")) {
        json(res, 200, {
          object: "list",
          model: "text-embedding-3-small",
          data: [{ object: "embedding", index: 0, embedding: [0.1, 0.2] }],
          usage: { prompt_tokens: 8, total_tokens: 8 },
        });
      } else if (path.endsWith("/messages")) {
        if (body.stream) void sse(res, messageEvents(), true);
        else json(res, 200, message());
      } else json(res, 404, { error: { message: "not found" } });
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
