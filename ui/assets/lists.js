// Anomalies, and alert rules with their recent transitions; rules are created and edited as the
// API takes them (JSON), so every field the API knows is available.

import { get, send } from "./api.js";
import { durationMs, el, rangeField, rangeStart, table, time } from "./format.js";

export async function anomalies(main, { params, navigate }) {
  const range = params.get("range") || "24h";
  const form = el("form", { class: "filters", "aria-label": "Anomaly range" }, rangeField("a-range", range));
  form.elements.range.addEventListener("change", () => navigate(`/anomalies?range=${form.elements.range.value}`));
  const body = el("tbody");
  main.replaceChildren(
    el("h1", {}, "Anomalies"),
    form,
    table(
      "Anomalies, newest first",
      ["Time", "Kind", "Series", "Value", "Baseline", "Score", "Message", "Trace"],
      body,
    ),
  );
  const { anomalies: list } = await get("/api/v1/anomalies", { from: rangeStart(range), limit: 200 });
  body.replaceChildren(
    ...list.map((a) =>
      el(
        "tr",
        {},
        el("td", {}, time(a.time)),
        el("td", {}, a.kind),
        el("td", {}, [a.service, a.provider, a.model, a.operation].filter(Boolean).join(" · ")),
        el("td", { class: "num" }, fixed(a.value)),
        el("td", { class: "num" }, fixed(a.baseline)),
        el("td", { class: "num" }, fixed(a.score)),
        el("td", {}, a.message || ""),
        el("td", {}, a.trace_id ? el("a", { href: `/traces/${a.trace_id}` }, "trace") : "–"),
      ),
    ),
  );
  if (!list.length) body.append(el("tr", {}, el("td", { colspan: 8 }, "No anomalies in this range.")));
}

const fixed = (v) => (typeof v === "number" ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3)) : "–");

const EXAMPLE = {
  name: "error rate",
  metric: "error_rate",
  group_by: ["model"],
  window: "15m",
  op: ">",
  threshold: 0.1,
  for: "0s",
  notify: [],
};

export async function alerts(main) {
  const rulesBody = el("tbody");
  const history = el("tbody");
  const editor = el("textarea", { id: "rule-json", rows: 12, spellcheck: "false", class: "mono" });
  editor.value = JSON.stringify(EXAMPLE, null, 2);
  const message = el("p", { class: "error", role: "alert" });
  let editing = null;
  const title = el("h2", {}, "New rule");
  const form = el(
    "form",
    { "aria-labelledby": "rule-title" },
    el("label", { for: "rule-json" }, "Rule (JSON, as POST /api/v1/alert-rules takes it)"),
    editor,
    message,
    el(
      "div",
      { class: "pager" },
      el("button", { type: "submit" }, "Save rule"),
      el("button", { type: "button", class: "quiet", onclick: () => edit(null) }, "New"),
    ),
  );
  title.id = "rule-title";
  const edit = (rule) => {
    editing = rule?.id ?? null;
    title.textContent = rule ? `Edit ${rule.name}` : "New rule";
    const body = rule ? { ...rule } : EXAMPLE;
    for (const k of ["id", "project", "source", "created_at", "updated_at", "secret_set"]) delete body[k];
    editor.value = JSON.stringify(body, null, 2);
    message.textContent = "";
    editor.focus();
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(editor.value);
    } catch (e) {
      message.textContent = `Not JSON: ${e.message}`;
      return;
    }
    try {
      await send(editing ? "PUT" : "POST", editing ? `/api/v1/alert-rules/${editing}` : "/api/v1/alert-rules", body);
      message.textContent = "";
      edit(null);
      await load();
    } catch (e) {
      message.textContent = e.message;
    }
  });

  // Shown whole once its lists are here, so nothing moves as they arrive.
  main.replaceChildren(el("h1", {}, "Alerts"), el("p", { class: "status", role: "status" }, "Loading alerts…"));
  await load();
  main.replaceChildren(
    el("h1", {}, "Alerts"),
    el("h2", {}, "Rules"),
    table(null, ["Name", "Metric", "Condition", "Window", "Source", ""], rulesBody),
    title,
    form,
    el("h2", {}, "Recent transitions"),
    table(null, ["Time", "Rule", "Series", "State", "Traces"], history),
  );

  async function load() {
    const [{ rules }, { events }] = await Promise.all([
      get("/api/v1/alert-rules"),
      get("/api/v1/alerts", { limit: 100 }),
    ]);
    const byId = new Map(rules.map((r) => [r.id, r]));
    rulesBody.replaceChildren(
      ...rules.map((r) =>
        el(
          "tr",
          {},
          el("td", {}, r.name),
          el("td", {}, r.metric),
          el("td", {}, `${r.op} ${r.threshold}`),
          el("td", {}, r.window),
          el("td", {}, r.source),
          el(
            "td",
            {},
            r.source === "api"
              ? el("button", { type: "button", class: "quiet", onclick: () => edit(r) }, "Edit")
              : "config",
          ),
        ),
      ),
    );
    if (!rules.length) rulesBody.append(el("tr", {}, el("td", { colspan: 6 }, "No rules yet.")));
    history.replaceChildren(
      ...events.map((e) =>
        el(
          "tr",
          {},
          el("td", {}, time(e.at)),
          el("td", {}, byId.get(e.rule)?.name ?? e.rule),
          el(
            "td",
            {},
            Object.entries(e.series || {})
              .map(([k, v]) => `${k}=${v}`)
              .join(", ") || "–",
          ),
          el("td", {}, e.state),
          el("td", {}, tracesLink(e, byId.get(e.rule))),
        ),
      ),
    );
    if (!events.length) history.append(el("tr", {}, el("td", { colspan: 5 }, "No transitions yet.")));
  }
}

/** Dimensions of a series or rule filter that the trace list filters by. */
const LISTED = ["service", "model", "provider", "user", "session"];

/** A link to the traces a transition was about: its series and the rule's filter, over the
 * rule's window before the transition. */
function tracesLink(event, rule) {
  const window = durationMs(rule?.window) ?? 3600e3;
  const at = Date.parse(event.at);
  const query = new URLSearchParams({ from: new Date(at - window).toISOString(), to: new Date(at + 1).toISOString() });
  for (const source of [rule?.filter, event.series]) {
    for (const [k, v] of Object.entries(source || {})) if (LISTED.includes(k) && v) query.set(k, v);
  }
  return el("a", { href: `/traces?${query}` }, "traces");
}
