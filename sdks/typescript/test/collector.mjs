// A real LLMScope binary (`LLMSCOPE_BIN`, else the workspace's debug build) on free ports, with
// its SQLite store in a temporary folder; the spans are read back through its query API.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { trace } from "@opentelemetry/api";

const here = path.dirname(fileURLToPath(import.meta.url));

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Collector {
  /** A collector; `httpPort` to take an address chosen before (an app already sending there). */
  static async start({ httpPort } = {}) {
    const c = new Collector();
    c.dir = mkdtempSync(path.join(os.tmpdir(), "llmscope-ts-"));
    const [grpc, http, api] = [await freePort(), httpPort ?? (await freePort()), await freePort()];
    c.endpoint = `http://127.0.0.1:${http}`;
    c.api = `http://127.0.0.1:${api}`;
    const bin = process.env.LLMSCOPE_BIN ?? path.join(here, "../../../target/debug/llmscope");
    c.process = spawn(bin, [], {
      cwd: c.dir,
      env: {
        ...process.env,
        LLMSCOPE_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
        LLMSCOPE_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
        LLMSCOPE_API_ENDPOINT: `127.0.0.1:${api}`,
        LLMSCOPE_SQLITE_PATH: path.join(c.dir, "llmscope.db"),
        LLMSCOPE_QUEUE_DIR: path.join(c.dir, "queue"),
      },
      stdio: "ignore",
    });
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`${c.api}/healthz`)).ok) return c;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    throw new Error("the collector did not start");
  }

  async get(pathAndQuery) {
    const r = await fetch(this.api + pathAndQuery);
    return { status: r.status, body: await r.json() };
  }

  /** The trace once `ready` accepts it. */
  async trace(traceId, ready = (t) => t.spans?.length > 0, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
      const r = await this.get(`/api/v1/traces/${traceId}`);
      if (r.status === 200 && ready(r.body)) return r.body;
      last = r.body;
      await sleep(100);
    }
    throw new Error(`trace ${traceId} never became ready: ${JSON.stringify(last)}`);
  }

  async stop() {
    if (this.process.exitCode === null) {
      this.process.kill("SIGTERM");
      await new Promise((resolve) => this.process.once("exit", resolve));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function modelCalls(trace) {
  return trace.spans.filter((s) => s.gen_ai?.model_call);
}

/** Runs `fn` inside a span observed by `llmscope`; its trace id and result. */
export async function inTrace(llmscope, fn) {
  let traceId;
  const result = await llmscope.observe("test-root", async () => {
    traceId = trace.getActiveSpan().spanContext().traceId;
    return fn();
  })();
  return [traceId, result];
}
