"""OpenInference's Anthropic instrumentor: a message and a streamed message inside an
`agent-run` span. Writes ../openinference-anthropic-chat.json.

Recorded with anthropic 2.14.0 (which traces itself with the OpenTelemetry GenAI conventions:
both its spans and OpenInference's describe each call) and openinference-instrumentation-anthropic
3.1.0.
"""

import os

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()

import anthropic  # noqa: E402
from openinference.instrumentation.anthropic import AnthropicInstrumentor  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

tracer_provider = TracerProvider(resource=Resource.create({"service.name": "anthropic-agent"}))
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
trace.set_tracer_provider(tracer_provider)
AnthropicInstrumentor().instrument(tracer_provider=tracer_provider)

client = anthropic.Anthropic(base_url=base_url.removesuffix("/v1"), api_key="sk-ant-test")
messages = [{"role": "user", "content": "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"}]
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("agent-run", attributes={"session.id": "sess-1", "user.id": "user-1"}):
    client.messages.create(model="claude-3-5-haiku-20241022", max_tokens=100, messages=messages)
    with client.messages.stream(model="claude-3-5-haiku-20241022", max_tokens=100, messages=messages) as stream:
        for _ in stream.text_stream:
            pass
tracer_provider.force_flush()
here = os.path.dirname(os.path.abspath(__file__))
doc = capture.write(os.path.join(here, "..", "openinference-anthropic-chat.json"))
print("spans:", sum(len(s["spans"]) for r in doc["resourceSpans"] for s in r["scopeSpans"]))
