"""Logfire (Pydantic) instrumenting the OpenAI client: one call and one streamed call inside an
`agent-run` span, then one streamed call outside any span. Writes ../logfire-openai-chat.json.

Recorded with logfire 5.4.0, openai 1.109.1, opentelemetry-sdk 1.45.2.

    python -m venv /tmp/rec && . /tmp/rec/bin/activate && pip install logfire==5.4.0 openai==1.109.1 -r requirements.txt
    python logfire_openai.py
"""

import os

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()

import logfire  # noqa: E402
import openai  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

logfire.configure(
    send_to_logfire=False,
    service_name="logfire-agent",
    console=False,
    additional_span_processors=[BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))],
)
client = openai.OpenAI(base_url=base_url, api_key="sk-test")
logfire.instrument_openai(client)
messages = [{"role": "user", "content": "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"}]
with logfire.span("agent-run", **{"session.id": "sess-1", "user.id": "user-1"}):
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass
# The same streamed call outside any span: Logfire then emits its log in a trace of its own.
stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})
for _ in stream:
    pass
logfire.force_flush()
here = os.path.dirname(os.path.abspath(__file__))
capture.write(os.path.join(here, "..", "logfire-openai-chat.json"))
print("spans:", sum(len(s["spans"]) for r in capture.write("/dev/null")["resourceSpans"] for s in r["scopeSpans"]))
