/**
 * LLMScope for Node.js: traces OpenAI and Anthropic calls in the OpenTelemetry GenAI conventions
 * and sends them to LLMScope in the background. Nothing here throws into the app or makes a call
 * wait for LLMScope.
 */

import { guard } from "./client.js";
import { wrapAnthropic } from "./anthropic.js";
import { wrapOpenAI } from "./openai.js";

export { flush, init, shutdown, stats, type InitOptions } from "./client.js";
export { withContext, type ContextOptions } from "./context.js";
export { event, score } from "./events.js";
export { observe } from "./observe.js";

/** The same client, traced: `new OpenAI()` (chat completions, responses, embeddings) or
 * `new Anthropic()` (messages), streaming included. Anything else is returned as it is. */
export function wrap<T extends object>(client: T): T {
  return (
    guard("wrap", () => {
      const messages = (client as { messages?: { create?: unknown } }).messages;
      if (typeof messages?.create === "function") return wrapAnthropic(client);
      const chat = (client as { chat?: { completions?: { create?: unknown } } }).chat;
      if (typeof chat?.completions?.create === "function") return wrapOpenAI(client);
      return client;
    }) ?? client
  );
}
