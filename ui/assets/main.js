// The UI's entry: routes by path (links are plain URLs, so they can be shared and reloaded),
// asks for a key when the API refuses without one, and mounts one page at a time.

import { forgetKey, key, onUnauthorized, setKey } from "./api.js";
import { el } from "./format.js";

const main = document.getElementById("main");
const dialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");
const keyError = document.getElementById("key-error");
const forget = document.getElementById("forget-key");

const ROUTES = [
  [/^\/(traces)?$/, () => import("./traces.js"), "traces"],
  [/^\/traces\/([0-9a-fA-F]{32})$/, () => import("./trace.js"), "traces"],
  [/^\/live$/, () => import("./live.js"), "live"],
  [/^\/usage$/, () => import("./usage.js"), "usage"],
  [/^\/anomalies$/, () => import("./lists.js").then((m) => m.anomalies), "anomalies"],
  [/^\/alerts$/, () => import("./lists.js").then((m) => m.alerts), "alerts"],
];

/** The page now shown, so it can stop what it runs (the live stream) when left. */
let current = null;

async function render() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const path = location.pathname;
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  for (const link of document.querySelectorAll(".top nav a")) {
    const active = route && link.getAttribute("href") === `/${route[2]}`;
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  forget.hidden = !key();
  if (!route) {
    main.replaceChildren(
      el("h1", {}, "Not found"),
      el("p", {}, "No page here. ", el("a", { href: "/traces" }, "Traces")),
    );
    return;
  }
  const [pattern, load] = route;
  const page = await load();
  if (controller.signal.aborted) return;
  const match = path.match(pattern);
  try {
    await (page.render ?? page)(main, {
      params: new URLSearchParams(location.search),
      match,
      signal: controller.signal,
      navigate,
    });
  } catch (e) {
    if (controller.signal.aborted || e.status === 401) return;
    main.replaceChildren(el("p", { class: "banner", role: "alert" }, e.message));
  }
}

/** Goes to `href` within the UI (history entry, no reload). */
export function navigate(href, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  render();
}

// Links within the UI change the page without a reload; others (and modified clicks) as usual.
document.addEventListener("click", (event) => {
  const link = event.target.closest?.("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const target = new URL(link.href, location.href);
  if (target.origin !== location.origin || target.pathname.startsWith("/api/")) return;
  event.preventDefault();
  navigate(target.pathname + target.search);
});
addEventListener("popstate", render);

onUnauthorized((message) => {
  current?.abort();
  main.replaceChildren(el("p", { class: "status" }, "An API key is needed to show this page."));
  keyError.textContent = key() ? `That key was refused: ${message}` : "";
  forgetKey();
  forget.hidden = true;
  if (!dialog.open) dialog.showModal();
  keyInput.focus();
});

document.getElementById("key-form").addEventListener("submit", (event) => {
  const value = keyInput.value.trim();
  if (!value) {
    event.preventDefault();
    return;
  }
  setKey(value);
  keyInput.value = "";
  keyError.textContent = "";
  render();
});

forget.addEventListener("click", () => {
  forgetKey();
  render();
});

render();
