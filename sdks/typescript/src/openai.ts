/**
 * OpenAI: `chat.completions.create` and `responses.create` (streaming included), and
 * `embeddings.create`. A streamed chat gets `stream_options.include_usage` unless the caller set
 * `stream_options`; the usage-only last chunk this adds is counted and kept from the caller,
 * whose code never expected a chunk without choices.
 */

import { Call, asString, finishReasons, get, textPart, type Json } from "./genai.js";
import { proxied, traced, type Routes, type StreamRecorder } from "./wrap.js";

function parts(content: unknown): Json[] {
  if (content === null || content === undefined) return [];
  if (typeof content === "string") return [textPart(content)];
  const out: Json[] = [];
  for (const p of Array.isArray(content) ? content : [content]) {
    const kind = get(p, "type");
    if (kind === "text" || kind === "input_text" || kind === "output_text") {
      out.push(textPart(get(p, "text") ?? ""));
    } else if (kind !== undefined) out.push({ type: String(kind) });
  }
  return out;
}

function parseArguments(raw: unknown): unknown {
  if (typeof raw !== "string") return raw;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

function toolCalls(calls: unknown): Json[] {
  if (!Array.isArray(calls)) return [];
  return calls.map((c) => ({
    type: "tool_call",
    id: get(c, "id"),
    name: get(get(c, "function"), "name"),
    arguments: parseArguments(get(get(c, "function"), "arguments")),
  }));
}

export function inputMessages(messages: unknown): Json[] {
  if (!Array.isArray(messages)) return [];
  return messages.map((m) => {
    const role = get(m, "role") ?? "user";
    if (role === "tool") {
      const response = get(m, "content");
      return {
        role: "tool",
        parts: [{ type: "tool_call_response", id: get(m, "tool_call_id"), response }],
      };
    }
    return { role, parts: [...parts(get(m, "content")), ...toolCalls(get(m, "tool_calls"))] };
  });
}

function recordUsage(call: Call, usage: unknown): void {
  if (usage === undefined || usage === null) return;
  call.usage(get(usage, "prompt_tokens"), get(usage, "completion_tokens"), {
    cacheRead: get(get(usage, "prompt_tokens_details"), "cached_tokens"),
    reasoning: get(get(usage, "completion_tokens_details"), "reasoning_tokens"),
  });
}

function recordChat(call: Call, response: unknown): void {
  call.set("gen_ai.response.id", asString(get(response, "id")));
  call.set("gen_ai.response.model", asString(get(response, "model")));
  const choices = (get(response, "choices") as unknown[] | undefined) ?? [];
  const reasons = choices.map((c) => get(c, "finish_reason"));
  call.set("gen_ai.response.finish_reasons", finishReasons(reasons));
  call.content("gen_ai.output.messages", () =>
    choices.map((c) => {
      const message = get(c, "message");
      return {
        role: get(message, "role") ?? "assistant",
        parts: [...parts(get(message, "content")), ...toolCalls(get(message, "tool_calls"))],
        finish_reason: get(c, "finish_reason"),
      };
    }),
  );
  recordUsage(call, get(response, "usage"));
}

/** Tokens guessed from characters (four a token), marked as such: a stream cut short before
 * its usage. */
export function estimate(call: Call, inputChars: number, outputChars: number): void {
  call.usage(Math.ceil(inputChars / 4), Math.ceil(outputChars / 4));
  call.set("llmscope.usage.estimated", true);
}

/** Characters of text a request holds, for estimates. */
function requestChars(params: Record<string, unknown>): number {
  return JSON.stringify(params.messages ?? params.input ?? "").length;
}

class ChatChunks implements StreamRecorder {
  private id: string | undefined;
  private model: string | undefined;
  private text = "";
  private readonly reasons = new Map<number, string>();
  private readonly tools = new Map<number, { id?: string; name?: string; arguments: string }>();
  private usage: unknown;

  constructor(
    private readonly hideUsageChunk: boolean,
    private readonly chars: number,
  ) {}

  add(chunk: unknown): boolean {
    this.id ??= asString(get(chunk, "id"));
    this.model ??= asString(get(chunk, "model"));
    const usage = get(chunk, "usage");
    if (usage) this.usage = usage;
    const choices = (get(chunk, "choices") as unknown[] | undefined) ?? [];
    for (const choice of choices) {
      const index = (get(choice, "index") as number | undefined) ?? 0;
      const delta = get(choice, "delta");
      const content = get(delta, "content");
      if (typeof content === "string" && index === 0) this.text += content;
      for (const tc of (get(delta, "tool_calls") as unknown[] | undefined) ?? []) {
        const at = (get(tc, "index") as number | undefined) ?? 0;
        const slot = this.tools.get(at) ?? { arguments: "" };
        slot.id ??= asString(get(tc, "id"));
        slot.name ??= asString(get(get(tc, "function"), "name"));
        slot.arguments += (get(get(tc, "function"), "arguments") as string | undefined) ?? "";
        this.tools.set(at, slot);
      }
      const reason = asString(get(choice, "finish_reason"));
      if (reason) this.reasons.set(index, reason);
    }
    return !(this.hideUsageChunk && usage && choices.length === 0);
  }

  finish(call: Call, complete: boolean): void {
    call.set("gen_ai.response.id", this.id);
    call.set("gen_ai.response.model", this.model);
    call.set("gen_ai.response.finish_reasons", finishReasons([...this.reasons.values()]));
    const tools = [...this.tools.values()].map((t) => ({
      type: "tool_call",
      id: t.id,
      name: t.name,
      arguments: parseArguments(t.arguments),
    }));
    const text = this.text;
    call.content("gen_ai.output.messages", [
      {
        role: "assistant",
        parts: [...(text ? [textPart(text)] : []), ...tools],
        finish_reason: this.reasons.get(0),
      },
    ]);
    if (this.usage) recordUsage(call, this.usage);
    else estimate(call, this.chars, text.length);
    void complete;
  }
}

function server(client: object): string | undefined {
  try {
    return new URL(String(get(client, "baseURL"))).hostname;
  } catch {
    return undefined;
  }
}

const chat = {
  provider: "openai",
  operation: "chat",
  adjust: (params: Record<string, unknown>) =>
    params.stream === true && params.stream_options === undefined
      ? { ...params, stream_options: { include_usage: true } }
      : params,
  request: (call: Call, params: Record<string, unknown>) =>
    call.content("gen_ai.input.messages", () => inputMessages(params.messages)),
  response: recordChat,
  stream: (sent: Record<string, unknown>, original: Record<string, unknown>) =>
    new ChatChunks(original.stream_options === undefined, requestChars(sent)),
};

function recordResponse(call: Call, response: unknown): void {
  call.set("gen_ai.response.id", asString(get(response, "id")));
  call.set("gen_ai.response.model", asString(get(response, "model")));
  const status = asString(get(response, "status"));
  if (status) call.set("gen_ai.response.finish_reasons", [status]);
  const output = (get(response, "output") as unknown[] | undefined) ?? [];
  call.content("gen_ai.output.messages", () =>
    output
      .filter((o) => get(o, "type") === "message" || get(o, "type") === "function_call")
      .map((o) =>
        get(o, "type") === "message"
          ? { role: get(o, "role") ?? "assistant", parts: parts(get(o, "content")) }
          : {
              role: "assistant",
              parts: [
                {
                  type: "tool_call",
                  id: get(o, "call_id"),
                  name: get(o, "name"),
                  arguments: parseArguments(get(o, "arguments")),
                },
              ],
            },
      ),
  );
  const usage = get(response, "usage");
  if (usage) {
    call.usage(get(usage, "input_tokens"), get(usage, "output_tokens"), {
      cacheRead: get(get(usage, "input_tokens_details"), "cached_tokens"),
      reasoning: get(get(usage, "output_tokens_details"), "reasoning_tokens"),
    });
  }
}

/** A Responses API stream: `response.completed` carries the whole response; text deltas are
 * kept for a stream cut short before it. */
class ResponseEvents implements StreamRecorder {
  private completed: unknown;
  private text = "";
  private id: string | undefined;
  private model: string | undefined;

  constructor(private readonly chars: number) {}

  add(event: unknown): boolean {
    const type = get(event, "type");
    const response = get(event, "response");
    if (response) {
      this.id ??= asString(get(response, "id"));
      this.model ??= asString(get(response, "model"));
    }
    if (type === "response.completed" || type === "response.incomplete") this.completed = response;
    else if (type === "response.output_text.delta") this.text += String(get(event, "delta") ?? "");
    return true;
  }

  finish(call: Call): void {
    if (this.completed) {
      recordResponse(call, this.completed);
      return;
    }
    call.set("gen_ai.response.id", this.id);
    call.set("gen_ai.response.model", this.model);
    call.content("gen_ai.output.messages", [{ role: "assistant", parts: [textPart(this.text)] }]);
    estimate(call, this.chars, this.text.length);
  }
}

const responses = {
  provider: "openai",
  operation: "chat",
  stream: (sent: Record<string, unknown>) => new ResponseEvents(requestChars(sent)),
  request: (call: Call, params: Record<string, unknown>) =>
    call.content("gen_ai.input.messages", () =>
      typeof params.input === "string"
        ? [{ role: "user", parts: [textPart(params.input)] }]
        : inputMessages(params.input),
    ),
  response: recordResponse,
};

const embeddings = {
  provider: "openai",
  operation: "embeddings",
  response: (call: Call, response: unknown) => {
    call.set("gen_ai.response.model", asString(get(response, "model")));
    const usage = get(response, "usage");
    call.usage(get(usage, "prompt_tokens"), undefined);
  },
};

export function wrapOpenAI<T extends object>(client: T): T {
  const at = () => server(client);
  const routes: Routes = {
    chat: { completions: { create: (create) => traced(create, chat, at) } },
    responses: { create: (create) => traced(create, responses, at) },
    embeddings: { create: (create) => traced(create, embeddings, at) },
  };
  return proxied(client, routes);
}
