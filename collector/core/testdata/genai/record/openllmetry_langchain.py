"""OpenLLMetry's LangChain and OpenAI instrumentations (`opentelemetry-instrumentation-langchain`,
`opentelemetry-instrumentation-openai`): a LangChain `ChatOpenAI` call and a streamed one inside
an `agent-run` span. Writes ../openllmetry-langchain-chat.json.

Recorded with opentelemetry-instrumentation-langchain 0.62.4, opentelemetry-instrumentation-openai
0.62.4, langchain-openai 1.7.4, openai 3.57.0, opentelemetry-sdk 1.45.2.
"""

import os

import fake_provider
import capture

provider, base_url = fake_provider.start()
collector, endpoint = capture.start()

from langchain_openai import ChatOpenAI  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: E402
from opentelemetry.instrumentation.langchain import LangchainInstrumentor  # noqa: E402
from opentelemetry.instrumentation.openai import OpenAIInstrumentor  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402

tracer_provider = TracerProvider(resource=Resource.create({"service.name": "openllmetry-langchain-agent"}))
tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
trace.set_tracer_provider(tracer_provider)
LangchainInstrumentor().instrument(tracer_provider=tracer_provider)
OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)

llm = ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key="sk-test", stream_usage=True)
question = "My number is +1 415 555 0100 and my email jane.doe@example.com; what is the weather in Paris?"
tracer = trace.get_tracer("app")
with tracer.start_as_current_span("agent-run", attributes={"session.id": "sess-1", "user.id": "user-1"}):
    llm.invoke(question)
    for _ in llm.stream(question):
        pass
tracer_provider.force_flush()
here = os.path.dirname(os.path.abspath(__file__))
doc = capture.write(os.path.join(here, "..", "openllmetry-langchain-chat.json"))
print("spans:", sum(len(s["spans"]) for r in doc["resourceSpans"] for s in r["scopeSpans"]))
