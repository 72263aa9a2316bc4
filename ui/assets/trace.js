// One trace: its spans as a tree on a timeline (waterfall), and the chosen span's detail; an
// LLM call shows its messages as a chat, with tokens, cost, latency and finish reason.

import { ApiError, get } from "./api.js";
import { count, el, ms, redactedText, stat, time, usd } from "./format.js";

export async function render(main, { match }) {
  const id = match[1].toLowerCase();
  main.replaceChildren(el("p", { class: "status" }, "Loading trace…"));
  let trace;
  try {
    trace = await get(`/api/v1/traces/${id}`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.replaceChildren(
        el("h1", {}, "Trace not found"),
        el("p", {}, `No trace ${id} is stored (yet). `, el("a", { href: "/traces" }, "All traces")),
      );
      return;
    }
    throw e;
  }
  const spans = order(trace.spans);
  const start = Math.min(...spans.map((s) => Date.parse(s.start_time)));
  const end = Math.max(...spans.map((s) => Date.parse(s.end_time)));
  const calls = spans.filter((s) => s.gen_ai?.model_call);
  const sum = (f) => calls.reduce((a, s) => a + (s.gen_ai[f] || 0), 0);
  const root = spans[0];

  const detail = el("section", { class: "detail", "aria-label": "Span detail" });
  const list = el("ol", { class: "waterfall", "aria-label": "Spans on a timeline" });
  const choose = (span, button) => {
    for (const b of list.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b === button));
    detail.replaceChildren(...spanDetail(span, trace.scores || []));
  };
  for (const span of spans) {
    const left = ((Date.parse(span.start_time) - start) / Math.max(end - start, 1)) * 100;
    const width = Math.max((span.duration_ms / Math.max(end - start, 1)) * 100, 0.3);
    const kind = span.status === "error" ? "err" : span.gen_ai?.model_call ? "llm" : "";
    const button = el(
      "button",
      { type: "button", "aria-pressed": "false" },
      el("span", { class: "name", style: { paddingLeft: `${span.depth * 14}px` } }, span.name),
      el(
        "span",
        { class: "track", "aria-hidden": "true" },
        el("span", { class: `bar ${kind}`, style: { left: `${left.toFixed(3)}%`, width: `${width.toFixed(3)}%` } }),
        el("span", { class: "dur" }, ms(span.duration_ms)),
      ),
    );
    button.setAttribute("aria-label", `${span.name}, ${ms(span.duration_ms)}${kind === "err" ? ", error" : ""}`);
    button.addEventListener("click", () => choose(span, button));
    list.append(el("li", {}, button));
  }

  main.replaceChildren(
    el("p", {}, el("a", { href: "/traces" }, "← Traces")),
    el("h1", {}, root?.name || id),
    el("p", { class: "mono muted" }, id),
    el(
      "dl",
      { class: "stats" },
      stat("Started", time(root?.start_time)),
      stat("Duration", ms(end - start)),
      stat("Spans", count(spans.length)),
      stat("LLM calls", count(calls.length)),
      stat("Tokens in / out", `${count(sum("input_tokens"))} / ${count(sum("output_tokens"))}`),
      stat("Cost", usd(sum("cost_usd"))),
      stat("Errors", count(spans.filter((s) => s.status === "error").length)),
    ),
    el("div", { class: "trace" }, list, detail),
  );
  const first = calls[0] ?? root;
  const index = spans.indexOf(first);
  choose(first, list.querySelectorAll("button")[index]);
}

/** Spans depth-first from the roots, children by start, each with its `depth`. */
function order(spans) {
  const ids = new Set(spans.map((s) => s.span_id));
  const children = new Map();
  for (const s of spans) {
    const parent = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
  }
  for (const list of children.values()) list.sort((a, b) => Date.parse(a.start_time) - Date.parse(b.start_time));
  const out = [];
  const visit = (parent, depth) => {
    for (const s of children.get(parent) || []) {
      out.push({ ...s, depth });
      visit(s.span_id, depth + 1);
    }
  };
  visit(null, 0);
  return out;
}

function spanDetail(span, scores) {
  const g = span.gen_ai;
  const out = [el("h2", {}, span.name)];
  const facts = [
    ["Service", span.service],
    ["Kind", span.kind],
    ["Status", span.status + (span.status_message ? `: ${span.status_message}` : "")],
    ["Latency", ms(span.duration_ms)],
  ];
  if (g) {
    facts.push(
      ["Operation", g.operation],
      ["Provider", g.provider],
      ["Model", g.response_model || g.request_model],
      ["Input tokens", count(g.input_tokens)],
      ["Cached input tokens", count(g.cache_read_tokens)],
      ["Output tokens", count(g.output_tokens)],
      ["Reasoning tokens", count(g.reasoning_tokens)],
      ["Cost", usd(g.cost_usd)],
      ["Finish reason", finishReasons(g) || "–"],
    );
  }
  out.push(
    el(
      "dl",
      { class: "stats" },
      facts.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => stat(k, v)),
    ),
  );
  const own = scores.filter((s) => s.span_id === span.span_id);
  if (own.length) {
    out.push(
      el("h2", {}, "Scores"),
      el(
        "ul",
        {},
        own.map((s) => el("li", {}, `${s.name}: ${s.value}`, s.comment ? ` — ${s.comment}` : "")),
      ),
    );
  }
  if (g) {
    const messages = [
      ...(g.system_instructions || []).map((part) => ({ role: "system", parts: [part] })),
      ...(g.input_messages || []),
      ...(g.output_messages || []),
    ];
    if (messages.length) out.push(el("h2", {}, "Messages"), el("div", { class: "chat" }, messages.map(message)));
  }
  out.push(
    el(
      "details",
      { class: "raw" },
      el("summary", {}, "Raw attributes"),
      el(
        "pre",
        {},
        JSON.stringify({ attributes: span.attributes, resource: span.resource, events: span.events }, null, 2),
      ),
    ),
  );
  return out;
}

function finishReasons(g) {
  return (g.output_messages || [])
    .map((m) => m.finish_reason)
    .filter(Boolean)
    .join(", ");
}

function message(m) {
  const role = String(m.role || "unknown");
  return el(
    "article",
    { class: `msg ${role}`, "aria-label": `${role} message` },
    el("div", { class: "role" }, role),
    (m.parts || []).map(part),
  );
}

function part(p) {
  switch (p.type) {
    case "text":
    case "reasoning":
      return el(
        "div",
        { class: "text" },
        p.type === "reasoning" ? el("em", {}, "reasoning: ") : null,
        redactedText(p.content ?? ""),
      );
    case "tool_call":
      return el(
        "div",
        {},
        el("strong", {}, `Tool call ${p.name ?? ""}`),
        p.id ? el("span", { class: "mono muted" }, ` ${p.id}`) : null,
        el(
          "pre",
          {},
          redactedText(typeof p.arguments === "string" ? p.arguments : JSON.stringify(p.arguments, null, 2)),
        ),
      );
    case "tool_call_response":
      return el(
        "div",
        {},
        el("strong", {}, "Tool result"),
        p.id ? el("span", { class: "mono muted" }, ` ${p.id}`) : null,
        el("pre", {}, redactedText(typeof p.response === "string" ? p.response : JSON.stringify(p.response, null, 2))),
      );
    default:
      return el("pre", {}, redactedText(JSON.stringify(p, null, 2)));
  }
}
