// The query API, as the UI calls it. The key (when the API requires one) lives in this tab's
// sessionStorage and goes in the Authorization header, never in a URL.

const KEY = "llmscope.key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const key = () => sessionStorage.getItem(KEY);
export const setKey = (value) => sessionStorage.setItem(KEY, value);
export const forgetKey = () => sessionStorage.removeItem(KEY);

let unauthorized = () => {};
/** Called with the server's message when a request is refused for its key (401). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function headers(extra) {
  const h = { accept: "application/json", ...extra };
  const k = key();
  if (k) h.authorization = `Bearer ${k}`;
  return h;
}

/** `path` with the non-empty `params` as its query. */
function url(path, params = {}) {
  const u = new URL(path, location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(name, value);
  }
  return u;
}

async function call(method, path, params, body) {
  let response;
  try {
    response = await fetch(url(path, params), {
      method,
      headers: headers(body === undefined ? {} : { "content-type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `LLMScope is unreachable: ${e.message}`);
  }
  const text = await response.text();
  let json = {};
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    json = { error: text };
  }
  if (response.status === 401) {
    unauthorized(json.error || "this API key was refused");
    throw new ApiError(401, json.error || "unauthorized");
  }
  if (!response.ok) throw new ApiError(response.status, json.error || response.statusText);
  return json;
}

export const get = (path, params) => call("GET", path, params);
export const send = (method, path, body) => call(method, path, {}, body);

/**
 * Follows `/api/v1/stream` as Server-Sent Events over fetch (so the key goes in a header),
 * calling `onMessage` with each JSON message and `onState` with "open", "retrying" or "closed"
 * (with the server's reason when it refused the stream for good);
 * reconnects with the last event id after a pause. Stops when `signal` aborts.
 */
export async function follow(params, onMessage, onState, signal) {
  let lastId = null;
  while (!signal.aborted) {
    try {
      const response = await fetch(url("/api/v1/stream", params), {
        headers: headers({ accept: "text/event-stream", ...(lastId ? { "last-event-id": lastId } : {}) }),
        signal,
      });
      if (response.status === 401) {
        const body = await response.json().catch(() => ({}));
        unauthorized(body.error || "this API key was refused");
        onState("closed");
        return;
      }
      if (response.status === 404 || response.status === 400) {
        // The stream is off on this collector, or a filter is wrong: retrying will not help.
        const body = await response.json().catch(() => ({}));
        onState("closed", body.error || `HTTP ${response.status}`);
        return;
      }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      onState("open");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = [];
          for (const line of event.split("\n")) {
            if (line.startsWith("id:")) lastId = line.slice(3).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
          }
          if (data.length) {
            try {
              onMessage(JSON.parse(data.join("\n")));
            } catch {
              // a message that is not JSON is not ours to show
            }
          }
        }
      }
    } catch (e) {
      if (signal.aborted) break;
    }
    if (signal.aborted) break;
    onState("retrying");
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  onState("closed");
}
