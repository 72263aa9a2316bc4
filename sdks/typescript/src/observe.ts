/**
 * `observe(name, fn)`: a span around an agent step or tool, sync or async; model calls inside are
 * its children. The function's result and errors are its own: an error is recorded on the span
 * and thrown on unchanged.
 */

import { context, SpanStatusCode, trace, type Span } from "@opentelemetry/api";

import { current, guard } from "./client.js";
import { contextAttributes } from "./context.js";

export function observe<A extends unknown[], R>(
  name: string,
  fn: (...args: A) => R,
): (...args: A) => R {
  return function (this: unknown, ...args: A): R {
    const span = guard("observe", () =>
      current()?.tracer.startSpan(name, { attributes: { ...contextAttributes() } }),
    );
    if (span === undefined) return fn.apply(this, args);
    const end = (error?: unknown) => guard("observe", () => finish(span, error));
    let result: R;
    try {
      result = context.with(trace.setSpan(context.active(), span), () => fn.apply(this, args));
    } catch (error) {
      end(error);
      throw error;
    }
    if (result instanceof Promise) {
      result.then(
        () => end(),
        (error) => end(error),
      );
      return result;
    }
    end();
    return result;
  };
}

function finish(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.setAttribute("error.type", error instanceof Error ? error.constructor.name : typeof error);
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : String(error),
    });
    if (error instanceof Error) span.recordException(error);
  }
  span.end();
}
