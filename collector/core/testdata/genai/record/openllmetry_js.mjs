// OpenLLMetry for JavaScript (`@traceloop/node-server-sdk`) instrumenting OpenAI: a call and a
// streamed call inside an `agent-run` workflow. Its exporter posts OTLP/HTTP protobuf to
// `<baseUrl>/v1/traces`. Recorded with @traceloop/node-server-sdk 0.27.0, openai 5.23.2.
import * as traceloop from "@traceloop/node-server-sdk";
import OpenAI from "openai";

traceloop.initialize({
  appName: "openllmetry-js-agent",
  baseUrl: process.env.OTLP_URL.replace(/\/v1\/traces$/, ""),
  apiKey: "tl-test",
  disableBatch: true,
  instrumentModules: { openAI: OpenAI },
});
const client = new OpenAI({ baseURL: process.env.PROVIDER_URL, apiKey: "sk-test" });
const messages = [{ role: "user", content: "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?" }];
await traceloop.withAssociationProperties({ session_id: "sess-1", user_id: "user-1" }, () =>
  traceloop.withWorkflow({ name: "agent-run" }, async () => {
    await client.chat.completions.create({ model: "gpt-4o-mini", messages });
    const stream = await client.chat.completions.create({ model: "gpt-4o-mini", messages, stream: true, stream_options: { include_usage: true } });
    for await (const _ of stream) {
    }
  }),
);
await traceloop.forceFlush();
