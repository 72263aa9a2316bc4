// LLM calls as they are stored, over the live stream, with the stream's filters; pause holds
// what arrives (shown when resumed), and every message the stream says was dropped is counted.

import { follow } from "./api.js";
import { checkField, count, el, formQuery, ms, table, textField, time, usd } from "./format.js";

const FILTERS = [
  ["service", "Service"],
  ["model", "Model"],
  ["provider", "Provider"],
  ["user", "User"],
  ["session", "Session"],
];
const SHOWN = 200;
const HELD = 1000;

export async function render(main, { params, navigate, signal }) {
  const form = el(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter the live stream" },
    FILTERS.map(([name, label]) => textField(`l-${name}`, name, label, params.get(name))),
    checkField("l-errors", "errors_only", "Errors only", params.get("errors_only") === "true"),
    el("div", { class: "field" }, el("button", { type: "submit" }, "Apply")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(`/live?${formQuery(form)}`);
  });

  const state = el("span", { role: "status" }, "Connecting…");
  const counts = el("span", { class: "muted" });
  const pause = el("button", { type: "button", class: "quiet", "aria-pressed": "false" }, "Pause");
  const body = el("tbody");
  main.replaceChildren(
    el("h1", {}, "Live"),
    form,
    el("div", { class: "live-controls" }, pause, state, counts),
    table(
      "LLM calls as they arrive, newest first",
      [
        "Time",
        "Call",
        ["Service", "hide-narrow"],
        "Model",
        ["Tokens in / out", "num hide-narrow"],
        ["Cost", "num"],
        ["Latency", "num"],
        "Status",
      ],
      body,
    ),
  );

  let received = 0;
  let dropped = 0;
  let paused = false;
  let held = [];
  const show = () => {
    counts.textContent = `${count(received)} received · ${count(dropped)} dropped${paused ? ` · ${count(held.length)} held while paused` : ""}`;
  };
  const add = (span) => {
    body.prepend(row(span));
    while (body.rows.length > SHOWN) body.lastElementChild.remove();
  };
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      held.forEach(add);
      held = [];
    }
    show();
  });
  show();

  const query = { kind: "llm_calls" };
  for (const [name] of FILTERS) query[name] = params.get(name);
  query.errors_only = params.get("errors_only");
  follow(
    query,
    (message) => {
      if (message.type === "span") {
        received += 1;
        if (!paused) add(message.data);
        else if (held.length < HELD) held.push(message.data);
        else dropped += 1;
      } else if (message.type === "dropped") {
        dropped += message.count ?? 0;
      }
      show();
    },
    (s, reason) => {
      state.textContent = { open: "Live", retrying: "Reconnecting…", closed: "Stopped" }[s] ?? s;
      if (reason) state.textContent = `Stopped: ${reason}`;
    },
    signal,
  );
}

function row(span) {
  const g = span.gen_ai || {};
  return el(
    "tr",
    {},
    el("td", {}, time(span.start_time)),
    el("td", {}, el("a", { href: `/traces/${span.trace_id}` }, span.name)),
    el("td", { class: "hide-narrow" }, span.service || "–"),
    el("td", {}, g.response_model || g.request_model || "–"),
    el("td", { class: "num hide-narrow" }, `${count(g.input_tokens)} / ${count(g.output_tokens)}`),
    el("td", { class: "num" }, usd(g.cost_usd)),
    el("td", { class: "num" }, ms(span.duration_ms)),
    el("td", {}, span.status === "error" ? el("span", { class: "badge" }, "error") : "ok"),
  );
}
