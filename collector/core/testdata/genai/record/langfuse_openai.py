"""Langfuse's Python SDK (OpenTelemetry-based) with its OpenAI wrapper (`langfuse.openai`): a
call and a streamed call inside an `agent-run` observation. Its exporter posts OTLP to
`<LANGFUSE_HOST>/api/public/otel/v1/traces`. Writes ../langfuse-openai-chat.json.

Recorded with langfuse 5.0.4, openai 1.109.1, opentelemetry-sdk 1.45.2.
"""

import os

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()
os.environ["LANGFUSE_HOST"] = endpoint
os.environ["LANGFUSE_BASE_URL"] = endpoint
os.environ["LANGFUSE_PUBLIC_KEY"] = "pk-lf-test"
os.environ["LANGFUSE_SECRET_KEY"] = "sk-lf-test"
os.environ["OTEL_SERVICE_NAME"] = "langfuse-agent"

from langfuse import get_client, propagate_attributes  # noqa: E402
from langfuse.openai import openai  # noqa: E402

langfuse = get_client()
client = openai.OpenAI(base_url=base_url, api_key="sk-test")
messages = [{"role": "user", "content": "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"}]
with langfuse.start_as_current_observation(name="agent-run", as_type="span"), propagate_attributes(session_id="sess-1", user_id="user-1"):
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass
langfuse.flush()
here = os.path.dirname(os.path.abspath(__file__))
doc = capture.write(os.path.join(here, "..", "langfuse-openai-chat.json"))
print("spans:", sum(len(s["spans"]) for r in doc.get("resourceSpans", []) for s in r["scopeSpans"]))
