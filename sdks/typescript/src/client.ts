/**
 * The SDK's state: settings, the tracer provider that batches and exports spans, and the guard
 * that keeps every SDK-side error out of the app.
 *
 * Guarantees:
 * - Nothing here throws into user code: an SDK-side error is logged once per kind (a
 *   `console.warn`) and counted in `stats()`.
 * - Spans wait in a bounded queue (`maxQueueSize`) and go in batches as OTLP/HTTP protobuf with
 *   gzip; a full queue drops spans (counted), a call never waits (`batch.ts`).
 * - `flush` and `shutdown` settle within their timeout whatever the collector does.
 * - Export retries are the OpenTelemetry exporter's: exponential backoff with jitter on 429,
 *   502, 503 and 504, honouring `Retry-After`, within the export timeout.
 */

import { context, type Tracer } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";
import {
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from "@opentelemetry/sdk-trace";

import { Batcher } from "./batch.js";

export const VERSION = "0.1.0";
export const DEFAULT_ENDPOINT = "http://127.0.0.1:4318";

export type Redactor = (text: string) => string;

export interface InitOptions {
  /** OTLP/HTTP endpoint of LLMScope; `LLMSCOPE_ENDPOINT`, else `http://127.0.0.1:4318`. */
  endpoint?: string;
  /** Sent as a bearer token; `LLMSCOPE_API_KEY`. */
  apiKey?: string;
  /** `OTEL_SERVICE_NAME`, else `unknown_service`. */
  serviceName?: string;
  /** Record prompts and completions (default true). */
  captureContent?: boolean;
  /** Applied to every content attribute before it leaves the process. */
  redact?: Redactor;
  /** Fraction of traces kept, 0 to 1 (default 1). */
  sampleRate?: number;
  /** Spans waiting at most; more are dropped, counted (default 2048). */
  maxQueueSize?: number;
  /** One export's time, retries included, in milliseconds (default 10,000). */
  exportTimeoutMs?: number;
  /** How long a span may wait for a batch to fill, in milliseconds (default 1,000). */
  scheduleDelayMs?: number;
}

export interface Settings {
  endpoint: string;
  apiKey: string | undefined;
  serviceName: string | undefined;
  captureContent: boolean;
  redact: Redactor | undefined;
  sampleRate: number;
  maxQueueSize: number;
  exportTimeoutMs: number;
  scheduleDelayMs: number;
}

export interface State {
  settings: Settings;
  resource: Resource;
  provider: TracerProvider;
  batcher: Batcher;
  tracer: Tracer;
}

let state: State | undefined;
const counts = new Map<string, number>();
const reported = new Set<string>();
let hooksInstalled = false;
let contextManagerSet = false;

export function count(kind: string, n = 1): void {
  counts.set(kind, (counts.get(kind) ?? 0) + n);
}

/** Counts an SDK-side error and logs its kind the first time. */
export function report(kind: string, error: unknown): void {
  try {
    count("errors");
    count(`errors.${kind}`);
    if (!reported.has(kind)) {
      reported.add(kind);
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      console.warn(`llmscope: ${kind} failed (${message}); the call itself is unaffected`);
    }
  } catch {
    // The guard of the guard.
  }
}

/** Runs SDK-side code; an error in it is reported, never thrown. */
export function guard<T>(kind: string, fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    report(kind, error);
    return undefined;
  }
}

/** Counters: `errors` (and `errors.<kind>`); every span once as `spansExported`, `spansFailed`
 * or `spansDropped`. */
export function stats(): Record<string, number> {
  return Object.fromEntries(counts);
}

function settingsFrom(options: InitOptions): Settings {
  const env = process.env;
  const number = (v: number | undefined, fallback: number, min: number) =>
    typeof v === "number" && Number.isFinite(v) ? Math.max(v, min) : fallback;
  return {
    endpoint: options.endpoint || env.LLMSCOPE_ENDPOINT || DEFAULT_ENDPOINT,
    apiKey: options.apiKey || env.LLMSCOPE_API_KEY || undefined,
    serviceName: options.serviceName || env.OTEL_SERVICE_NAME || undefined,
    captureContent: options.captureContent ?? true,
    redact: options.redact,
    sampleRate: Math.min(number(options.sampleRate, 1, 0), 1),
    maxQueueSize: Math.floor(number(options.maxQueueSize, 2048, 1)),
    exportTimeoutMs: number(options.exportTimeoutMs, 10_000, 100),
    scheduleDelayMs: number(options.scheduleDelayMs, 1_000, 1),
  };
}

function build(settings: Settings): State {
  const headers: Record<string, string> = settings.apiKey
    ? { authorization: `Bearer ${settings.apiKey}` }
    : {};
  const exporter = new OTLPTraceExporter({
    url: settings.endpoint.replace(/\/+$/, "") + "/v1/traces",
    headers,
    compression: "gzip" as never,
    timeoutMillis: settings.exportTimeoutMs,
  });
  const batcher = new Batcher(
    exporter,
    settings.maxQueueSize,
    settings.scheduleDelayMs,
    (kind, n) => count(kind, n),
  );
  const resource = resourceFromAttributes({
    "service.name": settings.serviceName ?? "unknown_service:node",
    "telemetry.sdk.name": "llmscope",
    "telemetry.sdk.language": "nodejs",
    "telemetry.sdk.version": VERSION,
  });
  const provider = new TracerProvider({
    resource,
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRate) }),
    spanProcessors: [batcher],
  });
  return { settings, resource, provider, batcher, tracer: provider.getTracer("llmscope", VERSION) };
}

/** Configures the SDK; calling it again replaces the configuration (spans still waiting under
 * the old one are flushed, for up to 1 s). */
export function init(options: InitOptions = {}): void {
  guard("init", () => {
    // Spans join the app's traces through the active context; without a context manager
    // registered (no OpenTelemetry SDK in the app) there would be none across `await`.
    if (!contextManagerSet) {
      contextManagerSet = true;
      const manager = new AsyncLocalStorageContextManager();
      // `false` when the app registered its own (an OpenTelemetry SDK): that one serves.
      if (context.setGlobalContextManager(manager)) manager.enable();
    }
    const old = state;
    state = build(settingsFrom(options));
    if (old) void old.batcher.shutdownWithin(1_000).catch((e) => report("shutdown", e));
    installHooks();
  });
}

/** The current state, made from the environment on first use without `init`. */
export function current(): State | undefined {
  if (state === undefined) init();
  return state;
}

export function peek(): State | undefined {
  return state;
}

type Flusher = (timeoutMs: number) => Promise<boolean>;
const flushers: Flusher[] = [];

/** Another queue `flush` and `shutdown` wait for (the events' logs). */
export function addFlusher(flusher: Flusher): void {
  flushers.push(flusher);
}

function within<T>(promise: Promise<T>, timeoutMs: number, fallback: T): Promise<T> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), timeoutMs);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        clearTimeout(timer);
        report("flush", error);
        resolve(fallback);
      },
    );
  });
}

/** Exports everything ended so far; settles within `timeoutMs`, `true` if all of it went. */
export async function flush(options: { timeoutMs?: number } = {}): Promise<boolean> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const s = state;
  if (s === undefined) return true;
  const all = Promise.all([
    s.batcher.flushWithin(timeoutMs),
    ...flushers.map((f) => f(timeoutMs)),
  ]).then((results) => results.every(Boolean));
  return within(all, timeoutMs, false);
}

/** Flushes, then stops exporting; settles within `timeoutMs`. */
export async function shutdown(options: { timeoutMs?: number } = {}): Promise<boolean> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const s = state;
  if (s === undefined) return true;
  const flushed = await flush({ timeoutMs });
  if (state === s) state = undefined;
  await within(s.batcher.shutdownWithin(Math.min(timeoutMs, 500)), 1_000, undefined);
  return flushed;
}

/** Flush when the event loop empties and on SIGTERM (then the default action, unless the app
 * listens for SIGTERM itself), bounded. */
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  let exiting = false;
  process.on("beforeExit", () => {
    if (exiting || state === undefined) return;
    exiting = true;
    void shutdown({ timeoutMs: 5_000 });
  });
  const onSigterm = () => {
    void flush({ timeoutMs: 2_000 }).finally(() => {
      if (process.listenerCount("SIGTERM") === 1) {
        process.removeListener("SIGTERM", onSigterm);
        process.kill(process.pid, "SIGTERM");
      }
    });
  };
  process.on("SIGTERM", onSigterm);
}
