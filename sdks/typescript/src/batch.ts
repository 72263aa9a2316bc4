/**
 * Ended spans to the exporter in batches, from a bounded queue.
 *
 * The OpenTelemetry SDK's `BatchSpanProcessor` does this too, but cannot tell its caller what it
 * dropped; this one counts every span exactly once.
 *
 * Guarantees:
 * - `onEnd` never waits and never throws: a span is queued, or, when `maxQueueSize` spans already
 *   wait (or after shutdown), dropped and counted.
 * - Every ended, sampled span is counted once: `spansExported`, `spansFailed` (the exporter gave
 *   up after its retries), `spansDropped`, or it is still waiting.
 * - `forceFlush` settles within its timeout: `true` when everything that waited was exported.
 * - Its timers never keep the process alive.
 */

import { TraceFlags } from "@opentelemetry/api";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from "@opentelemetry/sdk-trace";

export type Count = (kind: "spansExported" | "spansFailed" | "spansDropped", n: number) => void;

export class Batcher implements SpanProcessor {
  private queue: ReadableSpan[] = [];
  private inFlight = 0;
  private failures = 0;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private idle: Array<() => void> = [];

  constructor(
    private readonly exporter: SpanExporter,
    private readonly maxQueueSize: number,
    private readonly delayMs: number,
    private readonly count: Count,
    private readonly maxBatch = 512,
  ) {
    this.maxBatch = Math.max(1, Math.min(maxBatch, maxQueueSize));
  }

  onStart(_span: Span): void {}

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.closed || this.queue.length >= this.maxQueueSize) {
      this.count("spansDropped", 1);
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.maxBatch) this.send();
    else this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.send();
    }, this.delayMs);
    this.timer.unref();
  }

  /** Sends one batch when none is in flight; the next follows when it settles. */
  private send(): void {
    if (this.inFlight > 0 || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    this.inFlight = batch.length;
    const settle = (result: ExportResult) => {
      const ok = result.code === ExportResultCode.SUCCESS;
      if (!ok) this.failures += 1;
      this.count(ok ? "spansExported" : "spansFailed", batch.length);
      this.inFlight = 0;
      if (this.queue.length > 0) this.send();
      else for (const resolve of this.idle.splice(0)) resolve();
    };
    try {
      this.exporter.export(batch, settle);
    } catch (error) {
      settle({ code: ExportResultCode.FAILED, error: error as Error });
    }
  }

  /** Resolves `true` when everything waiting went, and went well, within `timeoutMs`. */
  flushWithin(timeoutMs: number): Promise<boolean> {
    const failures = this.failures;
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timeout = setTimeout(() => resolve(false), timeoutMs);
      timeout.unref();
      this.idle.push(() => {
        clearTimeout(timeout);
        resolve(this.failures === failures);
      });
      this.send();
    });
  }

  async forceFlush(): Promise<void> {
    await this.flushWithin(30_000);
  }

  /** Sends what waits (while the exporter keeps up, up to `timeoutMs`), then stops; what still
   * waits is dropped (counted). */
  async shutdownWithin(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flushWithin(timeoutMs);
    if (this.queue.length > 0) {
      this.count("spansDropped", this.queue.length);
      this.queue = [];
    }
    await Promise.race([
      this.exporter.shutdown().catch(() => undefined),
      new Promise((resolve) => setTimeout(resolve, 500).unref()),
    ]);
  }

  shutdown(): Promise<void> {
    return this.shutdownWithin(5_000);
  }
}
