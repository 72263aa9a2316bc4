"""MLflow tracing (`mlflow.openai.autolog`) exporting over OTLP: one call and one streamed call
inside an `agent-run` span. Writes ../mlflow-openai-chat.json.

Recorded with mlflow-tracing 3.17.2, openai 3.57.0, opentelemetry-sdk 1.38.0 (mlflow-tracing
failed to end spans with 1.45).

    python mlflow_openai.py
"""

import os

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()
os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{endpoint}/v1/traces"
os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
os.environ["OTEL_SERVICE_NAME"] = "mlflow-agent"
here = os.path.dirname(os.path.abspath(__file__))


def _write():
    doc = capture.write(os.path.join(here, "..", "mlflow-openai-chat.json"))
    print("spans:", sum(len(s["spans"]) for r in doc.get("resourceSpans", []) for s in r["scopeSpans"]))


# Registered before MLflow's own exit hook, so it runs after MLflow flushed its spans.
import atexit  # noqa: E402

atexit.register(_write)

import logging  # noqa: E402
logging.basicConfig(level=logging.DEBUG if os.environ.get("DEBUG") else logging.WARNING)
import mlflow  # noqa: E402
import openai  # noqa: E402

mlflow.openai.autolog()
client = openai.OpenAI(base_url=base_url, api_key="sk-test")
messages = [{"role": "user", "content": "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"}]


@mlflow.trace(name="agent-run")
def run():
    mlflow.update_current_trace(tags={"session.id": "sess-1", "user.id": "user-1"})
    client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})
    for _ in stream:
        pass


run()
