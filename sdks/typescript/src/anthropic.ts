/**
 * Anthropic: `messages.create`, streaming included. Input tokens are counted as the GenAI
 * conventions count them: Anthropic's `input_tokens` plus cache reads and cache writes.
 */

import { Call, asString, finishReasons, get, textPart, type Json } from "./genai.js";
import { estimate } from "./openai.js";
import { proxied, traced, type StreamRecorder } from "./wrap.js";

function parts(content: unknown): Json[] {
  if (typeof content === "string") return [textPart(content)];
  if (!Array.isArray(content)) return [];
  return content.map((block) => {
    switch (get(block, "type")) {
      case "text":
        return textPart(get(block, "text") ?? "");
      case "tool_use":
        return {
          type: "tool_call",
          id: get(block, "id"),
          name: get(block, "name"),
          arguments: get(block, "input"),
        };
      case "tool_result":
        return {
          type: "tool_call_response",
          id: get(block, "tool_use_id"),
          response: get(block, "content"),
        };
      default:
        return { type: String(get(block, "type")) };
    }
  });
}

function recordUsage(call: Call, usage: unknown): void {
  if (!usage) return;
  const n = (v: unknown) => (Number.isInteger(v) ? (v as number) : 0);
  const cacheRead = get(usage, "cache_read_input_tokens");
  const cacheCreation = get(usage, "cache_creation_input_tokens");
  const input = get(usage, "input_tokens");
  call.usage(
    Number.isInteger(input) ? n(input) + n(cacheRead) + n(cacheCreation) : undefined,
    get(usage, "output_tokens"),
    { cacheRead, cacheCreation },
  );
}

function recordMessage(call: Call, message: unknown): void {
  call.set("gen_ai.response.id", asString(get(message, "id")));
  call.set("gen_ai.response.model", asString(get(message, "model")));
  const reason = get(message, "stop_reason");
  call.set("gen_ai.response.finish_reasons", finishReasons([reason]));
  call.content("gen_ai.output.messages", () => [
    { role: "assistant", parts: parts(get(message, "content")), finish_reason: reason },
  ]);
  recordUsage(call, get(message, "usage"));
}

class MessageEvents implements StreamRecorder {
  private id: string | undefined;
  private model: string | undefined;
  private reason: string | undefined;
  private readonly blocks: Array<Record<string, unknown>> = [];
  private readonly json = new Map<number, string>();
  private usage: Record<string, unknown> = {};
  private sawOutput = false;

  constructor(private readonly chars: number) {}

  add(event: unknown): boolean {
    switch (get(event, "type")) {
      case "message_start": {
        const message = get(event, "message");
        this.id = asString(get(message, "id"));
        this.model = asString(get(message, "model"));
        Object.assign(this.usage, get(message, "usage") ?? {});
        break;
      }
      case "content_block_start":
        this.blocks[(get(event, "index") as number) ?? this.blocks.length] = {
          ...(get(event, "content_block") as object),
        };
        break;
      case "content_block_delta": {
        const index = (get(event, "index") as number) ?? 0;
        const delta = get(event, "delta");
        const block = this.blocks[index] ?? (this.blocks[index] = { type: "text", text: "" });
        if (get(delta, "type") === "text_delta") {
          block.text = String(block.text ?? "") + String(get(delta, "text") ?? "");
        } else if (get(delta, "type") === "input_json_delta") {
          this.json.set(index, (this.json.get(index) ?? "") + String(get(delta, "partial_json")));
        }
        break;
      }
      case "message_delta": {
        this.reason = asString(get(get(event, "delta"), "stop_reason")) ?? this.reason;
        const usage = get(event, "usage");
        if (usage) {
          for (const [k, v] of Object.entries(usage)) if (v !== null) this.usage[k] = v;
          this.sawOutput = true;
        }
        break;
      }
    }
    return true;
  }

  finish(call: Call, _complete: boolean): void {
    for (const [index, text] of this.json) {
      const block = this.blocks[index];
      if (block) {
        try {
          block.input = JSON.parse(text);
        } catch {
          block.input = text;
        }
      }
    }
    recordMessage(call, {
      id: this.id,
      model: this.model,
      stop_reason: this.reason,
      content: this.blocks.filter(Boolean),
      usage: this.sawOutput ? this.usage : undefined,
    });
    if (!this.sawOutput) {
      const text = this.blocks.map((b) => String(b.text ?? "")).join("");
      estimate(call, this.chars, text.length);
    }
  }
}

const messages = {
  provider: "anthropic",
  operation: "chat",
  request: (call: Call, params: Record<string, unknown>) => {
    call.content("gen_ai.input.messages", () =>
      ((params.messages as unknown[] | undefined) ?? []).map((m) => ({
        role: get(m, "role") ?? "user",
        parts: parts(get(m, "content")),
      })),
    );
    if (params.system !== undefined) {
      call.content("gen_ai.system_instructions", () => parts(params.system));
    }
  },
  response: recordMessage,
  stream: (sent: Record<string, unknown>) =>
    new MessageEvents(JSON.stringify(sent.messages ?? "").length),
};

export function wrapAnthropic<T extends object>(client: T): T {
  const at = () => {
    try {
      return new URL(String(get(client, "baseURL"))).hostname;
    } catch {
      return undefined;
    }
  };
  return proxied(client, { messages: { create: (create) => traced(create, messages, at) } });
}
