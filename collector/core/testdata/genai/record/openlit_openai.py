"""OpenLIT instrumenting OpenAI (`openlit.init`): a call and a streamed call inside an
`agent-run` span. Writes ../openlit-openai-chat.json.

Recorded with openlit 1.34.43, openai 1.109.1, opentelemetry-sdk 1.37.0.
"""

import os

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()

import openai  # noqa: E402
import openlit  # noqa: E402
from opentelemetry import trace  # noqa: E402

openlit.init(otlp_endpoint=endpoint, application_name="openlit-agent", disable_metrics=True, disable_batch=False)
client = openai.OpenAI(base_url=base_url, api_key="sk-test")
messages = [{"role": "user", "content": "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"}]
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("agent-run", attributes={"session.id": "sess-1", "user.id": "user-1"}):
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass
trace.get_tracer_provider().force_flush()
here = os.path.dirname(os.path.abspath(__file__))
doc = capture.write(os.path.join(here, "..", "openlit-openai-chat.json"))
print("spans:", sum(len(s["spans"]) for r in doc.get("resourceSpans", []) for s in r["scopeSpans"]))
