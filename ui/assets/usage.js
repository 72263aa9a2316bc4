// Usage from the analytics API: totals, a chart over time, and a table by the chosen dimension.

import { get } from "./api.js";
import {
  chart,
  count,
  el,
  formQuery,
  ms,
  percent,
  rangeField,
  rangeStart,
  stat,
  svgEl,
  table,
  textField,
  usd,
} from "./format.js";

const GROUPS = ["model", "provider", "service", "operation", "user", "session"];
const METRICS = [
  ["cost_usd", "Cost", usd],
  ["requests", "Requests", count],
  ["input_tokens", "Input tokens", count],
  ["output_tokens", "Output tokens", count],
  ["errors", "Errors", count],
  ["error_rate", "Error rate", percent],
  ["p50", "Latency p50", ms],
  ["p95", "Latency p95", ms],
  ["p99", "Latency p99", ms],
];
/** Metrics that do not add up over groups: one line per group instead of stacked totals. */
const PER_GROUP = new Set(["error_rate", "p50", "p95", "p99"]);
/** Groups drawn as lines, the busiest first. */
const LINES = 5;
const BUCKETS = { "15m": "1m", "1h": "5m", "24h": "1h", "7d": "6h", "30d": "1d", all: "1d" };

export async function render(main, { params, navigate }) {
  const range = params.get("range") || "24h";
  const groupBy = GROUPS.includes(params.get("group_by")) ? params.get("group_by") : "model";
  const metric = METRICS.find(([m]) => m === params.get("metric")) ?? METRICS[0];
  const bucket = params.get("bucket") || BUCKETS[range] || "1h";
  const select = (id, name, label, options, value) =>
    el(
      "div",
      { class: "field" },
      el("label", { for: id }, label),
      el(
        "select",
        { id, name },
        options.map(([v, text]) => el("option", { value: v, selected: v === value }, text)),
      ),
    );
  const form = el(
    "form",
    { class: "filters", "aria-label": "Usage options" },
    rangeField("u-range", range),
    select(
      "u-group",
      "group_by",
      "Group by",
      GROUPS.map((g) => [g, g]),
      groupBy,
    ),
    select(
      "u-metric",
      "metric",
      "Chart",
      METRICS.map(([m, label]) => [m, label]),
      metric[0],
    ),
    select(
      "u-bucket",
      "bucket",
      "Bucket",
      ["1m", "5m", "1h", "6h", "1d"].map((b) => [b, b]),
      bucket,
    ),
    ["service", "model", "provider"].map((name) =>
      textField(`u-${name}`, name, name[0].toUpperCase() + name.slice(1), params.get(name)),
    ),
    el("div", { class: "field" }, el("button", { type: "submit" }, "Apply")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = formQuery(form);
    if (next.get("range") !== range) next.delete("bucket");
    navigate(`/usage?${next}`);
  });
  for (const s of form.querySelectorAll("select")) s.addEventListener("change", () => form.requestSubmit());

  const totals = el("dl", { class: "stats", "aria-label": "Totals" });
  const figure = el("figure", { class: "chart-wrap" });
  const body = el("tbody");
  // Shown whole once its data is here, so nothing moves as it arrives.
  main.replaceChildren(el("h1", {}, "Usage"), form, el("p", { class: "status", role: "status" }, "Loading usage…"));

  const query = { group_by: groupBy, from: rangeStart(range) };
  for (const name of ["service", "model", "provider"]) query[name] = params.get(name);
  const [whole, series] = await Promise.all([
    get("/api/v1/analytics/summary", query),
    get("/api/v1/analytics/summary", { ...query, bucket }),
  ]);
  main.replaceChildren(
    el("h1", {}, "Usage"),
    form,
    totals,
    figure,
    table(
      `Usage by ${groupBy}`,
      [
        groupBy,
        ["Requests", "num"],
        ["Error rate", "num"],
        ["Tokens in / out", "num"],
        ["Cost", "num"],
        ["Latency p50 / p95 / p99", "num hide-narrow"],
      ],
      body,
    ),
  );
  const groups = whole.groups.sort((a, b) => b.cost_usd - a.cost_usd || b.requests - a.requests);
  const total = (f) => groups.reduce((a, g) => a + (g[f] || 0), 0);
  const requests = total("requests");
  totals.replaceChildren(
    stat("Requests", count(requests)),
    stat("Errors", `${count(total("errors"))} (${percent(requests ? total("errors") / requests : 0)})`),
    stat("Input tokens", count(total("input_tokens"))),
    stat("Output tokens", count(total("output_tokens"))),
    stat("Cost", usd(total("cost_usd"))),
  );
  body.replaceChildren(
    ...groups.map((g) =>
      el(
        "tr",
        {},
        el("td", {}, g.key[groupBy] ?? "(none)"),
        el("td", { class: "num" }, count(g.requests)),
        el("td", { class: "num" }, percent(g.error_rate)),
        el("td", { class: "num" }, `${count(g.input_tokens)} / ${count(g.output_tokens)}`),
        el("td", { class: "num" }, usd(g.cost_usd)),
        el(
          "td",
          { class: "num hide-narrow" },
          `${ms(g.latency_ms?.p50)} / ${ms(g.latency_ms?.p95)} / ${ms(g.latency_ms?.p99)}`,
        ),
      ),
    ),
  );
  if (!groups.length) body.append(el("tr", {}, el("td", { colspan: 6 }, "No model calls in this range.")));
  const busiest = groups.slice(0, LINES).map((g) => g.key[groupBy] ?? "(none)");
  figure.replaceChildren(
    PER_GROUP.has(metric[0]) ? lines(series.groups, metric, groupBy, busiest) : bars(series.groups, metric),
    el(
      "figcaption",
      { class: "muted" },
      PER_GROUP.has(metric[0])
        ? `${metric[1]} per ${bucket}, by ${groupBy} (the ${busiest.length} busiest)`
        : `${metric[1]} per ${bucket}`,
    ),
  );
}

/** An SVG bar chart of the metric summed over groups per bucket. */
function bars(groups, [field, label, format]) {
  const byBucket = new Map();
  for (const g of groups) byBucket.set(g.bucket_start, (byBucket.get(g.bucket_start) || 0) + (g[field] || 0));
  const points = [...byBucket].sort(([a], [b]) => Date.parse(a) - Date.parse(b));
  const max = Math.max(0, ...points.map(([, v]) => v));
  const svg = chart(
    points.length ? `${label} over time, peak ${format(max)}` : `No ${label.toLowerCase()} in this range`,
  );
  const g = svgEl("g", { class: "bars" });
  // At most 60 units a bar, so a range of one bucket is not one wall of colour.
  const width = Math.min(780 / Math.max(points.length, 1), 60);
  points.forEach(([bucket, value], i) => {
    const h = max ? (value / max) * 190 : 0;
    const rect = svgEl("rect", {
      x: 10 + i * width + width * 0.1,
      y: 200 - h,
      width: Math.max(width * 0.8, 1),
      height: h,
    });
    rect.append(svgEl("title"));
    rect.lastChild.textContent = `${new Date(bucket).toLocaleString()}: ${format(value)}`;
    g.append(rect);
  });
  svg.append(g);
  return svg;
}

/** The value of `field` for a summary group: a latency percentile or a group's own field. */
const valueOf = (g, field) => (field.startsWith("p") ? g.latency_ms?.[field] : g[field]);

/** An SVG line chart, one line per group of `names`, over the buckets. */
function lines(groups, [field, label, format], groupBy, names) {
  const buckets = [...new Set(groups.map((g) => g.bucket_start))].sort((a, b) => Date.parse(a) - Date.parse(b));
  const values = groups.map((g) => valueOf(g, field)).filter((v) => typeof v === "number");
  const max = Math.max(0, ...values);
  const svg = chart(
    values.length
      ? `${label} over time by ${groupBy}, highest ${format(max)}`
      : `No ${label.toLowerCase()} in this range`,
  );
  const x = (bucket) => 10 + (buckets.length > 1 ? (buckets.indexOf(bucket) / (buckets.length - 1)) * 780 : 390);
  const y = (v) => 200 - (max ? (v / max) * 190 : 0);
  names.forEach((name, i) => {
    const points = groups
      .filter((g) => (g.key[groupBy] ?? "(none)") === name && typeof valueOf(g, field) === "number")
      .sort((a, b) => Date.parse(a.bucket_start) - Date.parse(b.bucket_start));
    const xy = points.map((g) => [x(g.bucket_start), y(valueOf(g, field))]);
    // A lone bucket is drawn as a short dash, which a one-point line would not show.
    const drawn =
      xy.length === 1
        ? [
            [xy[0][0] - 8, xy[0][1]],
            [xy[0][0] + 8, xy[0][1]],
          ]
        : xy;
    const line = svgEl("polyline", {
      class: `line line-${i}`,
      points: drawn.map(([px, py]) => `${px},${py}`).join(" "),
    });
    line.append(svgEl("title"));
    line.lastChild.textContent = `${name}: ${points.map((g) => format(valueOf(g, field))).join(", ")}`;
    svg.append(line);
  });
  const legend = el(
    "ul",
    { class: "legend" },
    names.map((name, i) => el("li", { class: `line-${i}` }, name)),
  );
  return el("div", {}, svg, legend);
}
