/**
 * `event(name, attributes)` and `score(traceId, name, value)`: OTLP log records, batched and
 * exported like spans (to `/v1/logs`). The shape, for any OTLP client to send the same:
 *
 * - a custom event: the record's event name (and the `event.name` attribute), the caller's
 *   attributes, and the trace and span ids of the span active when it was sent;
 * - a score: event name `llmscope.score`, attributes `llmscope.score.name`,
 *   `llmscope.score.value` (a number, a boolean or a category string) and optionally
 *   `llmscope.score.comment`, with the trace id (and span id) it judges.
 *
 * Bad arguments are reported (logged once, counted), never thrown. The collector's limits are
 * checked here too, so what is sent is accepted.
 */

import { context, trace, TraceFlags, type Attributes } from "@opentelemetry/api";
import type { Logger } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-proto";
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type LogRecordProcessor,
  type SdkLogRecord,
} from "@opentelemetry/sdk-logs";

import { addFlusher, guard, peek, current, VERSION, type State } from "./client.js";

const SCORE_EVENT = "llmscope.score";
/** Carries a trace id to `JoinTrace`: the logs SDK joins a record to a trace only through a
 * valid span context, and a score may judge a whole trace (no span). Never exported. */
const TRACE_MARK = "llmscope.internal.trace_id";

/** Gives a record marked with a trace id that trace (and no span). */
class JoinTrace implements LogRecordProcessor {
  onEmit(record: SdkLogRecord): void {
    const traceId = record.attributes[TRACE_MARK];
    if (typeof traceId !== "string") return;
    delete (record.attributes as Record<string, unknown>)[TRACE_MARK];
    record.spanContext = { traceId, spanId: "", traceFlags: TraceFlags.SAMPLED };
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}
const MAX_NAME = 256;
const MAX_COMMENT = 16 * 1024;

let logs: { state: State; provider: LoggerProvider; logger: Logger } | undefined;

function logger(): Logger | undefined {
  const state = current();
  if (state === undefined) return undefined;
  if (logs === undefined || logs.state !== state) {
    const s = state.settings;
    const exporter = new OTLPLogExporter({
      url: s.endpoint.replace(/\/+$/, "") + "/v1/logs",
      headers: s.apiKey ? { authorization: `Bearer ${s.apiKey}` } : {},
      compression: "gzip" as never,
      timeoutMillis: s.exportTimeoutMs,
    });
    const provider = new LoggerProvider({
      resource: state.resource,
      processors: [new JoinTrace(), new BatchLogRecordProcessor({ exporter })],
    });
    const old = logs;
    logs = { state, provider, logger: provider.getLogger("llmscope", VERSION) };
    if (old) void old.provider.shutdown().catch(() => undefined);
  }
  return logs.logger;
}

addFlusher(async () => {
  if (logs === undefined || peek() === undefined) return true;
  await logs.provider.forceFlush();
  return true;
});

function emit(name: string, attributes: Attributes, traceId?: string, spanId?: string): void {
  const log = logger();
  if (log === undefined) return;
  const joined =
    traceId && spanId
      ? trace.setSpanContext(context.active(), {
          traceId,
          spanId,
          traceFlags: TraceFlags.SAMPLED,
          isRemote: false,
        })
      : context.active();
  const all: Attributes = { "event.name": name, ...attributes };
  if (traceId && !spanId) all[TRACE_MARK] = traceId;
  log.emit({ eventName: name, context: joined, timestamp: Date.now(), attributes: all });
}

/** A custom event, joined to the active span. */
export function event(name: string, attributes: Attributes = {}): void {
  guard("event", () => {
    if (typeof name !== "string" || name === "") throw new Error("an event needs a name");
    const ctx = trace.getSpan(context.active())?.spanContext();
    emit(name, { ...attributes }, ctx?.traceId, ctx?.spanId);
  });
}

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

/** Feedback on a trace (or one span of it): a number, a boolean or a category. */
export function score(
  traceId: string,
  name: string,
  value: number | boolean | string,
  options: { comment?: string; spanId?: string } = {},
): void {
  guard("score", () => {
    const tid = String(traceId).toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(tid) || /^0+$/.test(tid)) {
      throw new Error(`traceId must be 32 hex digits, not all zero: ${JSON.stringify(traceId)}`);
    }
    const sid = options.spanId ? String(options.spanId).toLowerCase() : undefined;
    if (sid !== undefined && !/^[0-9a-f]{16}$/.test(sid)) {
      throw new Error(`spanId must be 16 hex digits, not ${JSON.stringify(options.spanId)}`);
    }
    if (typeof name !== "string" || name.trim() === "" || bytes(name) > MAX_NAME) {
      throw new Error(`a score needs a non-empty name of at most ${MAX_NAME} bytes`);
    }
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new Error("a score's number must be finite");
    }
    if (typeof value === "string" && (value === "" || bytes(value) > MAX_NAME)) {
      throw new Error(`a category must be a non-empty string of at most ${MAX_NAME} bytes`);
    }
    if (!["number", "boolean", "string"].includes(typeof value)) {
      throw new Error(`a score is a number, a boolean or a string, not ${typeof value}`);
    }
    const attributes: Attributes = { "llmscope.score.name": name, "llmscope.score.value": value };
    if (options.comment) {
      if (bytes(options.comment) > MAX_COMMENT) {
        throw new Error(`a score's comment is longer than ${MAX_COMMENT} bytes`);
      }
      attributes["llmscope.score.comment"] = String(options.comment);
    }
    emit(SCORE_EVENT, attributes, tid, sid);
  });
}
