// The Vercel AI SDK's telemetry (`experimental_telemetry`), a generateText and a streamText call
// inside an `agent-run` span, exported with the OpenTelemetry JS SDK over OTLP/HTTP protobuf.
// Recorded with ai 6.0.326, @ai-sdk/openai 3.0.141, @opentelemetry/sdk-trace-node 2.12.1,
// @opentelemetry/exporter-trace-otlp-proto 0.223.1.
import { createOpenAI } from "@ai-sdk/openai";
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { generateText, streamText } from "ai";

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "vercel-ai-agent" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: process.env.OTLP_URL }))],
});
provider.register();
const openai = createOpenAI({ baseURL: process.env.PROVIDER_URL, apiKey: "sk-test" });
const prompt = "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?";
const telemetry = { isEnabled: true, metadata: { sessionId: "sess-1", userId: "user-1" } };
const tracer = trace.getTracer("app");
await tracer.startActiveSpan("agent-run", async (span) => {
  await generateText({ model: openai.chat("gpt-4o-mini"), prompt, experimental_telemetry: telemetry });
  const result = streamText({ model: openai.chat("gpt-4o-mini"), prompt, experimental_telemetry: telemetry });
  for await (const _ of result.textStream) {
  }
  await result.usage;
  span.end();
});
await provider.forceFlush();
await provider.shutdown();
