"""LiteLLM's OpenTelemetry callback (`litellm.callbacks = ["otel"]`): a call and a streamed call
through `litellm.completion` inside an `agent-run` span. Writes ../litellm-openai-chat.json.

Recorded with litellm 1.110.2, openai 3.57.0, opentelemetry-sdk 1.45.2.
"""

import os
import time

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()
os.environ["OTEL_EXPORTER"] = "otlp_http"
os.environ["OTEL_ENDPOINT"] = f"{endpoint}/v1/traces"
os.environ["OTEL_SERVICE_NAME"] = "litellm-agent"

import litellm  # noqa: E402
from opentelemetry import trace  # noqa: E402

litellm.callbacks = ["otel"]
messages = [{"role": "user", "content": "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"}]
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("agent-run", attributes={"session.id": "sess-1", "user.id": "user-1"}):
    litellm.completion(model="openai/gpt-4o-mini", messages=messages, api_base=base_url, api_key="sk-test")
    stream = litellm.completion(model="openai/gpt-4o-mini", messages=messages, api_base=base_url, api_key="sk-test",
                                stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass
time.sleep(3)
provider_ = trace.get_tracer_provider()
if hasattr(provider_, "force_flush"):
    provider_.force_flush()
here = os.path.dirname(os.path.abspath(__file__))
doc = capture.write(os.path.join(here, "..", "litellm-openai-chat.json"))
print("spans:", sum(len(s["spans"]) for r in doc.get("resourceSpans", []) for s in r["scopeSpans"]))
