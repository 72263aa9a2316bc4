/**
 * One model call as a span in the current OpenTelemetry GenAI conventions: noted when the
 * request starts, ended exactly once with the response, the error, or the end of its stream.
 * The span is built after the call has returned to the app (`setImmediate`), so the caller pays
 * only for noting times and references.
 */

import {
  context,
  SpanKind,
  SpanStatusCode,
  type Attributes,
  type AttributeValue,
  type Context,
} from "@opentelemetry/api";

import { current, guard, report } from "./client.js";
import { contextAttributes } from "./context.js";

export type Json = unknown;

/** A field of a response object or plain object. */
export function get(obj: unknown, key: string): unknown {
  if (obj === null || typeof obj !== "object") return undefined;
  return (obj as Record<string, unknown>)[key];
}

export function asNumber(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

export function asString(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

const REQUEST_PARAMS: Record<string, string> = {
  temperature: "gen_ai.request.temperature",
  top_p: "gen_ai.request.top_p",
  top_k: "gen_ai.request.top_k",
  max_tokens: "gen_ai.request.max_tokens",
  max_completion_tokens: "gen_ai.request.max_tokens",
  max_output_tokens: "gen_ai.request.max_tokens",
  frequency_penalty: "gen_ai.request.frequency_penalty",
  presence_penalty: "gen_ai.request.presence_penalty",
  seed: "gen_ai.request.seed",
};

function now(): number {
  return performance.timeOrigin + performance.now();
}

export class Call {
  private active = false;
  private ended = false;
  private readonly attrs: Attributes = {};
  private readonly contents: Array<[string, Json | (() => Json)]> = [];
  private readonly later: Array<() => void> = [];
  private error: unknown;
  private startMs = 0;
  private endMs = 0;
  private parent: Context | undefined;
  private contextAttrs: Readonly<Attributes> = {};
  private params: Record<string, unknown> = {};

  constructor(
    private readonly provider: string,
    private readonly operation: string,
    params: unknown,
    private readonly server?: string,
  ) {
    try {
      if (current() === undefined) return;
      this.startMs = now();
      this.parent = context.active();
      this.contextAttrs = contextAttributes();
      this.params = params !== null && typeof params === "object" ? { ...params } : {};
      this.active = true;
    } catch (error) {
      report("span start", error);
    }
  }

  /** Message content (or a function making it), recorded when content is captured. */
  content(key: string, value: Json | (() => Json)): void {
    if (this.active) this.contents.push([key, value]);
  }

  set(key: string, value: AttributeValue | undefined | null): void {
    if (this.active && value !== undefined && value !== null) this.attrs[key] = value;
  }

  /** Reads the response into attributes when the span is built. */
  after(fn: () => void): void {
    if (this.active) this.later.push(fn);
  }

  /** Token counts as the conventions count them: input includes cache reads and writes, output
   * includes reasoning. */
  usage(
    input: unknown,
    output: unknown,
    extra: { cacheRead?: unknown; cacheCreation?: unknown; reasoning?: unknown } = {},
  ): void {
    const pairs: Array<[string, unknown]> = [
      ["gen_ai.usage.input_tokens", input],
      ["gen_ai.usage.output_tokens", output],
      ["gen_ai.usage.cache_read.input_tokens", extra.cacheRead],
      ["gen_ai.usage.cache_creation.input_tokens", extra.cacheCreation],
      ["gen_ai.usage.reasoning.output_tokens", extra.reasoning],
    ];
    for (const [key, value] of pairs) {
      if (Number.isInteger(value)) this.set(key, value as number);
    }
  }

  fail(error: unknown): void {
    if (this.active && !this.ended) this.error = error;
    this.end();
  }

  end(): void {
    if (!this.active || this.ended) return;
    this.ended = true;
    this.endMs = now();
    setImmediate(() => guard("span", () => this.build()));
  }

  private build(): void {
    const state = current();
    if (state === undefined) return;
    const model = asString(this.params.model);
    const attributes: Attributes = {
      "gen_ai.operation.name": this.operation,
      "gen_ai.provider.name": this.provider,
    };
    if (model) attributes["gen_ai.request.model"] = model;
    for (const [param, key] of Object.entries(REQUEST_PARAMS)) {
      const value = asNumber(this.params[param]);
      if (value !== undefined) attributes[key] = value;
    }
    const stop = this.params.stop ?? this.params.stop_sequences;
    if (typeof stop === "string") attributes["gen_ai.request.stop_sequences"] = [stop];
    else if (Array.isArray(stop)) attributes["gen_ai.request.stop_sequences"] = stop.map(String);
    if (this.server) attributes["server.address"] = this.server;
    Object.assign(attributes, this.contextAttrs);
    for (const fn of this.later) guard("response", fn);
    Object.assign(attributes, this.attrs);
    if (state.settings.captureContent) {
      for (const [key, value] of this.contents) {
        guard("content", () => {
          let text = JSON.stringify(typeof value === "function" ? value() : value);
          if (state.settings.redact) text = state.settings.redact(text);
          attributes[key] = text;
        });
      }
    }
    if (this.error !== undefined) {
      const e = this.error;
      attributes["error.type"] = e instanceof Error ? e.constructor.name : typeof e;
    }
    const span = state.tracer.startSpan(
      model ? `${this.operation} ${model}` : this.operation,
      { kind: SpanKind.CLIENT, attributes, startTime: this.startMs },
      this.parent,
    );
    if (this.error !== undefined) {
      const message = this.error instanceof Error ? this.error.message : String(this.error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: message.slice(0, 500) });
      if (this.error instanceof Error) span.recordException(this.error);
    }
    span.end(this.endMs);
  }
}

export function textPart(text: unknown): Record<string, unknown> {
  return { type: "text", content: typeof text === "string" ? text : String(text) };
}

export function finishReasons(reasons: unknown[]): string[] | undefined {
  const out = reasons.filter((r): r is string => typeof r === "string" && r !== "");
  return out.length > 0 ? out : undefined;
}
