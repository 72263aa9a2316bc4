"""The official OpenTelemetry GenAI instrumentation of OpenAI (`opentelemetry-instrumentation-
openai-v2`), message content captured as log events: a call and a streamed call inside an
`agent-run` span. Writes ../otel-genai-openai-chat.json (traces) and
../otel-genai-openai-chat.logs.json (the events).

Recorded with opentelemetry-instrumentation-openai-v2 2.1b0, opentelemetry-sdk 1.33.1 (later SDKs
dropped the events API this version uses), openai 1.109.1.
"""

import os

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()
os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"

import openai  # noqa: E402
from opentelemetry import _events, _logs, trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor  # noqa: E402
from opentelemetry.sdk._events import EventLoggerProvider  # noqa: E402
from opentelemetry.sdk._logs import LoggerProvider  # noqa: E402
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

resource = Resource.create({"service.name": "otel-genai-agent"})
tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
trace.set_tracer_provider(tracer_provider)
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")))
_logs.set_logger_provider(logger_provider)
_events.set_event_logger_provider(EventLoggerProvider(logger_provider))
OpenAIInstrumentor().instrument()

client = openai.OpenAI(base_url=base_url, api_key="sk-test")
messages = [{"role": "user", "content": "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"}]
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("agent-run", attributes={"session.id": "sess-1", "user.id": "user-1"}):
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass
tracer_provider.force_flush()
logger_provider.force_flush()
here = os.path.dirname(os.path.abspath(__file__))
doc = capture.write(os.path.join(here, "..", "otel-genai-openai-chat.json"))
logs = capture.write(os.path.join(here, "..", "otel-genai-openai-chat.logs.json"), "logs")
print("spans:", sum(len(s["spans"]) for r in doc["resourceSpans"] for s in r["scopeSpans"]),
      "logs:", sum(len(s.get("logRecords", [])) for r in logs.get("resourceLogs", []) for s in r["scopeLogs"]))
