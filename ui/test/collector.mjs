// A real LLMScope binary (`LLMSCOPE_BIN`, else the workspace's debug build) on free ports with its
// SQLite store in a temporary folder, optionally requiring API keys; and a real OpenTelemetry SDK
// sending GenAI spans to it as an instrumentation would.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { context, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

const here = path.dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.LLMSCOPE_BIN ?? path.join(here, "../../target/debug/llmscope");
export const ADMIN = "ui-test-admin-token-0123456789";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export class Collector {
  /**
   * Starts a collector on the built-in default config, changed by `edit` (text to text); with
   * `auth`, API keys are required (and `key` is one).
   */
  static async start({ auth = false, edit = (text) => text } = {}) {
    const c = new Collector();
    c.dir = mkdtempSync(path.join(os.tmpdir(), "llmscope-ui-"));
    const [grpc, http, api] = [await freePort(), await freePort(), await freePort()];
    c.otlp = `http://127.0.0.1:${http}`;
    c.api = `http://127.0.0.1:${api}`;
    c.env = {
      ...process.env,
      LLMSCOPE_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
      LLMSCOPE_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
      LLMSCOPE_API_ENDPOINT: `127.0.0.1:${api}`,
      LLMSCOPE_SQLITE_PATH: path.join(c.dir, "llmscope.db"),
      LLMSCOPE_QUEUE_DIR: path.join(c.dir, "queue"),
    };
    let config = edit(execFileSync(BIN, ["default-config"], { encoding: "utf8" }));
    if (auth) {
      config = config
        .replace("extensions:\n  api:", `extensions:\n  auth:\n    admin_token: ${ADMIN}\n  api:`)
        .replace("  extensions: [api, alerts]", "  extensions: [auth, api, alerts]");
    }
    c.config = path.join(c.dir, "llmscope.yaml");
    writeFileSync(c.config, config);
    const args = ["--config", c.config];
    if (auth) {
      c.key = execFileSync(BIN, [...args, "keys", "create", "--project", "ui", "--name", "browser"], {
        env: c.env,
        cwd: c.dir,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    }
    c.log = "";
    c.process = spawn(BIN, args, { cwd: c.dir, env: c.env, stdio: ["ignore", "ignore", "pipe"] });
    c.process.stderr.on("data", (chunk) => (c.log += chunk));
    for (let i = 0; i < 300; i++) {
      try {
        if ((await fetch(`${c.api}/healthz`)).ok) return c;
      } catch {
        // not up yet
      }
      await sleep(50);
    }
    throw new Error(`the collector did not start: ${c.log}`);
  }

  async get(pathAndQuery) {
    const headers = this.key ? { authorization: `Bearer ${this.key}` } : {};
    const r = await fetch(this.api + pathAndQuery, { headers });
    return { status: r.status, body: await r.json() };
  }

  /** Waits until the trace has `spans` spans stored. */
  async waitForTrace(traceId, spans) {
    for (let i = 0; i < 300; i++) {
      const r = await this.get(`/api/v1/traces/${traceId}`);
      if (r.status === 200 && r.body.spans.length >= spans) return r.body;
      await sleep(50);
    }
    throw new Error(`trace ${traceId} never arrived`);
  }

  /** A tracer exporting each span at once to this collector (with its key when it has one). */
  tracer(service) {
    const exporter = new OTLPTraceExporter({
      url: `${this.otlp}/v1/traces`,
      headers: this.key ? { authorization: `Bearer ${this.key}` } : {},
    });
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ "service.name": service }),
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
    });
    this.providers = [...(this.providers ?? []), provider];
    return provider.getTracer("ui-test");
  }

  async stop() {
    for (const p of this.providers ?? []) await p.shutdown();
    if (this.process.exitCode === null) {
      this.process.kill("SIGTERM");
      await new Promise((resolve) => this.process.once("exit", resolve));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * An agent run with one chat call, as the OpenTelemetry GenAI instrumentations record it:
 * `{prompt, answer, model, input, output, error}`. Returns the trace id.
 */
export async function agentRun(
  tracer,
  {
    root = "agent-run",
    prompt,
    answer,
    model = "gpt-4o-mini",
    input = 120,
    output = 40,
    error = false,
    user = "user-1",
  },
) {
  const span = tracer.startSpan(root);
  const call = tracer.startSpan(
    `chat ${model}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.response.id": `chatcmpl-${Math.random().toString(36).slice(2)}`,
        "gen_ai.usage.input_tokens": input,
        "gen_ai.usage.output_tokens": output,
        "gen_ai.response.finish_reasons": [error ? "error" : "stop"],
        "gen_ai.input.messages": JSON.stringify([{ role: "user", parts: [{ type: "text", content: prompt }] }]),
        "gen_ai.output.messages": JSON.stringify(
          error ? [] : [{ role: "assistant", parts: [{ type: "text", content: answer }], finish_reason: "stop" }],
        ),
        "user.id": user,
      },
    },
    trace.setSpan(context.active(), span),
  );
  await sleep(5);
  if (error) call.setStatus({ code: SpanStatusCode.ERROR, message: "rate limited by provider" });
  call.end();
  span.end();
  return span.spanContext().traceId;
}
