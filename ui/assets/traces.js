// Traces, newest first, with the API's filters and cursor paging; the URL holds the filters and
// the page's cursor, so a view can be shared.

import { get } from "./api.js";
import { checkField, count, el, formQuery, ms, rangeField, rangeStart, table, textField, time, usd } from "./format.js";

const FILTERS = ["service", "model", "provider", "user", "session"];
const PAGE = 50;

export async function render(main, { params, navigate }) {
  // A link may name an exact window (`from`, `to`: an alert's, say) instead of a range.
  const custom = params.get("from") ? { from: params.get("from"), to: params.get("to") } : null;
  const range = custom ? "custom" : params.get("range") || "24h";
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter traces" },
    textField("f-q", "q", "Words in span names", params.get("q")),
    rangeField("f-range", range),
    FILTERS.map((name) => textField(`f-${name}`, name, name[0].toUpperCase() + name.slice(1), params.get(name))),
    checkField("f-errors", "errors_only", "Errors only", params.get("errors_only") === "true"),
    el("div", { class: "field" }, el("button", { type: "submit" }, "Apply")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = formQuery(form);
    if (next.get("range") === "custom") {
      next.delete("range");
      next.set("from", custom.from);
      if (custom.to) next.set("to", custom.to);
    }
    navigate(`/traces?${next}`);
  });
  form.elements.range.addEventListener("change", () => form.requestSubmit());

  const body = el("tbody", {}, placeholderRows());
  const status = el("p", { class: "status", role: "status" }, "Loading traces…");
  const pager = el("div", { class: "pager" });
  main.replaceChildren(
    el("h1", {}, "Traces"),
    form,
    status,
    table(
      "Traces, newest first",
      [
        "Started",
        "Trace",
        ["Service", "hide-narrow"],
        ["Duration", "num"],
        ["LLM calls", "num"],
        ["Tokens in / out", "num hide-narrow"],
        ["Cost", "num"],
        "Status",
      ],
      body,
    ),
    pager,
  );

  const query = { limit: PAGE, from: custom?.from ?? rangeStart(range), to: custom?.to, cursor: params.get("cursor") };
  for (const name of FILTERS) query[name] = params.get(name);
  query.errors_only = params.get("errors_only");
  query.q = params.get("q");
  const page = await get("/api/v1/traces", query);
  body.replaceChildren(...page.traces.map(row));
  status.textContent = page.traces.length
    ? `${page.traces.length} trace${page.traces.length === 1 ? "" : "s"}${params.get("cursor") ? " (older page)" : ""}`
    : "No traces match. Send some OTLP to port 4317 or 4318, or widen the range.";

  const here = new URLSearchParams(params);
  here.delete("cursor");
  if (params.get("cursor")) pager.append(el("a", { class: "button quiet", href: `/traces?${here}` }, "Newest"));
  if (page.next_cursor) {
    const older = new URLSearchParams(here);
    older.set("cursor", page.next_cursor);
    pager.append(el("a", { class: "button", href: `/traces?${older}`, rel: "next" }, "Older"));
  }
}

function row(t) {
  return el(
    "tr",
    {},
    el("td", {}, time(t.start_time)),
    el("td", {}, el("a", { href: `/traces/${t.trace_id}` }, t.root_name || t.trace_id)),
    el("td", { class: "hide-narrow" }, t.service || "–"),
    el("td", { class: "num" }, ms(t.duration_ms)),
    el("td", { class: "num" }, count(t.llm_calls)),
    el("td", { class: "num hide-narrow" }, `${count(t.input_tokens)} / ${count(t.output_tokens)}`),
    el("td", { class: "num" }, usd(t.cost_usd)),
    el("td", {}, t.error ? el("span", { class: "badge" }, "error") : "ok"),
  );
}

/** Empty rows of the table's height while the first page loads, so nothing shifts. */
function placeholderRows() {
  return Array.from({ length: 10 }, () => el("tr", { "aria-hidden": "true" }, el("td", { colspan: 8 }, "\u00a0")));
}
