// OpenInference's OpenAI instrumentation for JavaScript: a call and a streamed call inside an
// `agent-run` span, exported with the OpenTelemetry JS SDK over OTLP/HTTP protobuf.
// Recorded with @arizeai/openinference-instrumentation-openai 4.2.7, openai 5.23.2,
// @opentelemetry/sdk-trace-node 2.12.1.
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { OpenAIInstrumentation } from "@arizeai/openinference-instrumentation-openai";
import OpenAI from "openai";

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "openinference-js-agent" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: process.env.OTLP_URL }))],
});
provider.register();
const instrumentation = new OpenAIInstrumentation();
instrumentation.setTracerProvider(provider);
instrumentation.manuallyInstrument(OpenAI);
const client = new OpenAI({ baseURL: process.env.PROVIDER_URL, apiKey: "sk-test" });
const messages = [{ role: "user", content: "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?" }];
const tracer = trace.getTracer("app");
await tracer.startActiveSpan("agent-run", { attributes: { "session.id": "sess-1", "user.id": "user-1" } }, async (span) => {
  await client.chat.completions.create({ model: "gpt-4o-mini", messages });
  const stream = await client.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, stream_options: { include_usage: true } });
  for await (const _ of stream) {
  }
  span.end();
});
await provider.forceFlush();
await provider.shutdown();
