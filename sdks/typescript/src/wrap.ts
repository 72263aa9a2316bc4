/**
 * The one shape of a traced `create`: note the call, let the provider module adjust the
 * request, call the SDK, then record the response, the error, or the stream as it is consumed.
 * The SDK's own promise (`APIPromise`, with `withResponse()` and friends) is returned unchanged;
 * the span follows it from the side. A stream is the SDK's own object with its async iterator
 * wrapped.
 */

import { guard, report } from "./client.js";
import { Call } from "./genai.js";

export interface StreamRecorder {
  /** Every chunk the SDK yields; `false` keeps it from the caller (a usage-only chunk the SDK
   * asked for on its own). */
  add(chunk: unknown): boolean;
  /** The stream ended (`complete`) or was cut short: record what was seen. */
  finish(call: Call, complete: boolean): void;
}

export interface Traced {
  provider: string;
  operation: string | ((params: Record<string, unknown>) => string);
  /** The request as sent: may add options (e.g. usage in streams). */
  adjust?: (params: Record<string, unknown>) => Record<string, unknown>;
  /** The request's content, recorded on `call`. */
  request?: (call: Call, params: Record<string, unknown>) => void;
  /** A whole response. */
  response: (call: Call, response: unknown) => void;
  /** A stream's recorder, for a request that asked for one. */
  stream?: (params: Record<string, unknown>, original: Record<string, unknown>) => StreamRecorder;
}

const streamsLeft = new FinalizationRegistry<() => void>((finish) => guard("stream", finish));

type Create = (this: unknown, params: unknown, ...rest: unknown[]) => unknown;

export function traced(create: Create, how: Traced, server: () => string | undefined): Create {
  return function (this: unknown, params: unknown, ...rest: unknown[]) {
    const original = (params ?? {}) as Record<string, unknown>;
    let call: Call | undefined;
    let sent: Record<string, unknown> = original;
    try {
      const operation =
        typeof how.operation === "function" ? how.operation(original) : how.operation;
      call = new Call(how.provider, operation, original, server());
      sent = how.adjust ? how.adjust(original) : original;
      how.request?.(call, original);
    } catch (error) {
      report("span start", error);
    }
    const result = create.call(this, sent, ...rest);
    if (call === undefined) return result;
    const c = call;
    if (result !== null && typeof (result as Promise<unknown>).then === "function") {
      (result as Promise<unknown>).then(
        (value) => guard("response", () => follow(c, how, value, sent, original)),
        (error) => c.fail(error),
      );
    } else {
      guard("response", () => follow(c, how, result, sent, original));
    }
    return result;
  };
}

function follow(
  call: Call,
  how: Traced,
  value: unknown,
  sent: Record<string, unknown>,
  original: Record<string, unknown>,
): void {
  const iterable =
    sent.stream === true &&
    value !== null &&
    typeof value === "object" &&
    typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
  if (!iterable || how.stream === undefined) {
    how.response(call, value);
    call.end();
    return;
  }
  const recorder = how.stream(sent, original);
  const stream = value as AsyncIterable<unknown> & object;
  const iterate = stream[Symbol.asyncIterator].bind(stream);
  let done = false;
  const finish = (complete: boolean) => {
    if (done) return;
    done = true;
    guard("stream", () => recorder.finish(call, complete));
    call.end();
  };
  // A stream dropped without being read to its end still ends its span.
  streamsLeft.register(stream, () => finish(false));
  Object.defineProperty(stream, Symbol.asyncIterator, {
    configurable: true,
    value: () => {
      const it = iterate();
      const wrapped: AsyncIterator<unknown> = {
        async next() {
          for (;;) {
            let step: IteratorResult<unknown>;
            try {
              step = await it.next();
            } catch (error) {
              if (!done) call.fail(error);
              done = true;
              throw error;
            }
            if (step.done) {
              finish(true);
              return step;
            }
            const shown = guard("stream", () => recorder.add(step.value)) ?? true;
            if (shown) return step;
          }
        },
        async return(v?: unknown) {
          finish(false);
          return it.return ? it.return(v) : { done: true, value: v };
        },
        async throw(e?: unknown) {
          finish(false);
          if (it.throw) return it.throw(e);
          throw e;
        },
      };
      return wrapped;
    },
  });
}

/** A proxy of `target` whose nested properties named in `routes` are replaced: a route is an
 * object of routes, or the replacement of a function. Methods are bound to their own object (the
 * SDKs use private class members). */
export type Routes = { [key: string]: Routes | ((original: Create) => Create) };

export function proxied<T extends object>(target: T, routes: Routes): T {
  // Per property: what the target held when it was wrapped, and the wrapping.
  const cache = new Map<PropertyKey, [unknown, unknown]>();
  return new Proxy(target, {
    get(obj, key) {
      const value: unknown = Reflect.get(obj, key, obj);
      if (typeof key === "symbol") return value;
      const hit = cache.get(key);
      if (hit !== undefined && hit[0] === value) return hit[1];
      const route = routes[key];
      let out: unknown;
      if (typeof value === "function" && typeof route === "function") {
        out = route((value as Create).bind(obj));
      } else if (typeof route === "object" && value !== null && typeof value === "object") {
        out = proxied(value, route);
      } else if (typeof value === "function") {
        out = (value as Create).bind(obj);
      } else {
        return value;
      }
      cache.set(key, [value, out]);
      return out;
    },
  });
}
