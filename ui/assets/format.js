// Formatting and DOM building. Everything shown is built with text nodes, never parsed as HTML:
// span names, attributes and prompts are data from instrumented apps.

/** `el("td", {class: "num"}, "12", child)`: an element with attributes and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    // Through the CSSOM: the page's policy refuses inline style attributes.
    else if (name === "style") Object.assign(node.style, value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const number = new Intl.NumberFormat("en-US");

export function ms(value) {
  if (value === null || value === undefined) return "–";
  if (value < 1) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${value.toFixed(value < 10 ? 1 : 0)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(2)} s`;
  return `${(value / 60_000).toFixed(1)} min`;
}

export function count(value) {
  return value === null || value === undefined ? "–" : number.format(value);
}

export function usd(value) {
  if (value === null || value === undefined) return "–";
  if (value === 0) return "$0";
  if (value < 0.01) return `$${value.toPrecision(3)}`;
  return `$${value.toFixed(value < 100 ? 4 : 2)}`;
}

export function percent(value) {
  return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`;
}

export function time(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  const thisYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleString(undefined, {
    year: thisYear ? undefined : "numeric",
    month: "short",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** Text with `[REDACTED:KIND]` markers shown as marks, so a reader sees what was removed. */
export function redactedText(value) {
  const text = String(value);
  const out = [];
  let at = 0;
  for (const match of text.matchAll(/\[REDACTED:[A-Z0-9_]+\]/g)) {
    if (match.index > at) out.push(text.slice(at, match.index));
    out.push(el("mark", { class: "redacted", title: "redacted before storage" }, match[0]));
    at = match.index + match[0].length;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/** Ranges offered by the pages, as `from` relative to now. */
const RANGES = [
  ["15m", "Last 15 minutes", 15 * 60e3],
  ["1h", "Last hour", 3600e3],
  ["24h", "Last 24 hours", 24 * 3600e3],
  ["7d", "Last 7 days", 7 * 24 * 3600e3],
  ["30d", "Last 30 days", 30 * 24 * 3600e3],
  ["all", "All time", null],
];

/** The RFC 3339 start of a named range, or "" for all time. */
export function rangeStart(name) {
  const range = RANGES.find(([n]) => n === name);
  return range && range[2] ? new Date(Date.now() - range[2]).toISOString() : "";
}

/** A labelled select of the ranges. */
export function rangeField(id, value) {
  const custom = value === "custom" ? el("option", { value: "custom", selected: true }, "Custom range") : null;
  return el(
    "div",
    { class: "field" },
    el("label", { for: id }, "Time range"),
    el(
      "select",
      { id, name: "range" },
      RANGES.map(([name, label]) => el("option", { value: name, selected: name === value }, label)),
      custom,
    ),
  );
}

/** A duration as rules write it (`90s`, `15m`, `1h`, `7d`) in milliseconds, or null. */
export function durationMs(text) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(String(text ?? "").trim());
  if (!match) return null;
  return Number(match[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[match[2]];
}

/** A labelled text input. */
export function textField(id, name, label, value) {
  return el(
    "div",
    { class: "field" },
    el("label", { for: id }, label),
    el("input", { id, name, type: "text", value: value || "", autocomplete: "off", spellcheck: "false" }),
  );
}

/** A labelled checkbox sent as `name=true` when checked. */
export function checkField(id, name, label, checked) {
  return el(
    "div",
    { class: "field check" },
    el("input", { id, name, type: "checkbox", value: "true", checked }),
    el("label", { for: id }, label),
  );
}

/** A form's non-empty fields as a query string, for the page's URL. */
export function formQuery(form) {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (value.trim()) query.set(name, value.trim());
  return query;
}

/**
 * A scrollable table: `caption` (read by screen readers only; null for none), `headings` as
 * text or `[text, class]`, and its `body` (a tbody).
 */
export function table(caption, headings, body) {
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      {},
      caption ? el("caption", { class: "skip" }, caption) : null,
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          headings.map((h) =>
            Array.isArray(h) ? el("th", { scope: "col", class: h[1] }, h[0]) : el("th", { scope: "col" }, h),
          ),
        ),
      ),
      body,
    ),
  );
}

/** One labelled figure of a `dl.stats`. */
export const stat = (label, value) => el("div", { class: "stat" }, el("dt", {}, label), el("dd", {}, value));

/** An empty chart, 800 by 220 units stretched to its box, described by `label`. */
export function chart(label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 800 220");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  return svg;
}

/** An SVG element with attributes. */
export function svgEl(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
