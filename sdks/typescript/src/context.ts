/**
 * `withContext({user, session, tags, metadata}, fn)`: attributes every span started inside
 * carries (nested contexts add to their parent's; inner values win). On `AsyncLocalStorage`, so
 * it follows `await`, timers and callbacks.
 */

import { AsyncLocalStorage } from "node:async_hooks";

import type { Attributes } from "@opentelemetry/api";

export interface ContextOptions {
  user?: string;
  session?: string;
  tags?: string[];
  metadata?: Record<string, unknown>;
}

const storage = new AsyncLocalStorage<Readonly<Attributes>>();

export function withContext<T>(options: ContextOptions, fn: () => T): T {
  const merged: Attributes = { ...(storage.getStore() ?? {}) };
  if (options.user !== undefined) merged["user.id"] = String(options.user);
  if (options.session !== undefined) merged["session.id"] = String(options.session);
  if (options.tags?.length) {
    const seen = (merged["llmscope.tags"] as string[] | undefined) ?? [];
    merged["llmscope.tags"] = [
      ...seen,
      ...options.tags.map(String).filter((t) => !seen.includes(t)),
    ];
  }
  for (const [k, v] of Object.entries(options.metadata ?? {})) {
    merged[`llmscope.metadata.${k}`] =
      typeof v === "string" || typeof v === "number" || typeof v === "boolean"
        ? v
        : JSON.stringify(v);
  }
  return storage.run(Object.freeze(merged), fn);
}

/** The current context's attributes. */
export function contextAttributes(): Readonly<Attributes> {
  return storage.getStore() ?? {};
}
