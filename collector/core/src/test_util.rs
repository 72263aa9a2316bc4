//! Builders for tests: spans, log records and batches without the OTLP boilerplate.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::{Batch, BatchContext, Payload};

/// A key-value pair from anything that converts to an attribute value.
/// The URL of a test service from `var` (`LLMSCOPE_TEST_POSTGRES_URL`, ...), or `None` after
/// saying the test skips; a failure instead when `LLMSCOPE_REQUIRE_SERVICES=1` (as in CI).
pub fn service_url(var: &str) -> Option<String> {
    let url = std::env::var(var).ok();
    if url.is_none() {
        assert!(
            std::env::var("LLMSCOPE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "{var} is not set but LLMSCOPE_REQUIRE_SERVICES=1"
        );
        eprintln!("skipping: {var} is not set");
    }
    url
}

pub fn kv(key: &str, value: impl Into<TestValue>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(value.into().0),
        }),
        ..Default::default()
    }
}

pub struct TestValue(pub Value);

impl From<&str> for TestValue {
    fn from(s: &str) -> Self {
        Self(Value::StringValue(s.to_owned()))
    }
}
impl From<i64> for TestValue {
    fn from(i: i64) -> Self {
        Self(Value::IntValue(i))
    }
}
impl From<f64> for TestValue {
    fn from(d: f64) -> Self {
        Self(Value::DoubleValue(d))
    }
}
impl From<bool> for TestValue {
    fn from(b: bool) -> Self {
        Self(Value::BoolValue(b))
    }
}
impl From<Value> for TestValue {
    fn from(v: Value) -> Self {
        Self(v)
    }
}

/// A span with the given ids (`trace` 16 bytes, `span` 8 bytes, filled from the numbers).
pub fn span(trace: u8, span_id: u8, name: &str, attributes: Vec<KeyValue>) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![span_id; 8],
        name: name.to_owned(),
        kind: 3,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_500_000_000,
        attributes,
        ..Default::default()
    }
}

/// A traces batch holding `spans` under one resource with `service.name = service`.
pub fn traces(service: &str, spans: Vec<Span>) -> Batch {
    Batch::new(
        Payload::Traces(traces_request(service, spans).resource_spans),
        BatchContext::default(),
    )
}

/// An OTLP export request holding `spans` under one resource with `service.name = service`.
pub fn traces_request(
    service: &str,
    spans: Vec<Span>,
) -> crate::otlp::collector::trace::v1::ExportTraceServiceRequest {
    crate::otlp::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

/// A logs batch holding `records` under one resource with `service.name = service`.
pub fn logs(service: &str, records: Vec<LogRecord>) -> Batch {
    Batch::new(
        Payload::Logs(vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            schema_url: String::new(),
        }]),
        BatchContext::default(),
    )
}

/// The spans of a traces batch, flattened.
pub fn spans_of(batch: &Batch) -> Vec<&Span> {
    match &batch.payload {
        Payload::Traces(rs) => rs
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .collect(),
        _ => Vec::new(),
    }
}

/// The log records of a logs batch, flattened.
pub fn records_of(batch: &Batch) -> Vec<&LogRecord> {
    match &batch.payload {
        Payload::Logs(rl) => rl
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .collect(),
        _ => Vec::new(),
    }
}

/// Recorded OTLP/JSON requests, compiled in so tests in every crate can use them.
pub mod fixtures {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    use crate::{Batch, BatchContext, Payload};

    pub const OPENLLMETRY_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/openllmetry-openai-chat.json");
    /// Logfire 5.4 instrumenting OpenAI: a call and a streamed call in an `agent-run` span,
    /// then a streamed call outside any span (`testdata/genai/record/logfire_openai.py`).
    pub const LOGFIRE_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/logfire-openai-chat.json");
    /// MLflow 3.17 tracing (`mlflow.openai.autolog`) over OTLP: a call and a streamed call in
    /// an `agent-run` span (`testdata/genai/record/mlflow_openai.py`).
    pub const MLFLOW_OPENAI_CHAT: &str = include_str!("../testdata/genai/mlflow-openai-chat.json");
    /// OpenInference's LangChain and OpenAI instrumentors both on: a `ChatOpenAI` call and a
    /// streamed one (`testdata/genai/record/openinference_langchain.py`).
    pub const OPENINFERENCE_LANGCHAIN_CHAT: &str =
        include_str!("../testdata/genai/openinference-langchain-chat.json");
    /// LiteLLM's OpenTelemetry callback: a call and a streamed call through
    /// `litellm.completion` (`testdata/genai/record/litellm_otel.py`).
    pub const LITELLM_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/litellm-openai-chat.json");
    /// OpenLIT 1.34 (`openlit.init`) instrumenting OpenAI: a call and a streamed call
    /// (`testdata/genai/record/openlit_openai.py`).
    pub const OPENLIT_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/openlit-openai-chat.json");
    /// Langfuse's Python SDK 5 with its OpenAI wrapper: a call and a streamed call
    /// (`testdata/genai/record/langfuse_openai.py`).
    pub const LANGFUSE_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/langfuse-openai-chat.json");
    /// OpenInference's Anthropic instrumentor beside the Anthropic SDK's own GenAI spans: a
    /// message and a streamed message (`testdata/genai/record/openinference_anthropic.py`).
    pub const OPENINFERENCE_ANTHROPIC_CHAT: &str =
        include_str!("../testdata/genai/openinference-anthropic-chat.json");
    /// The Vercel AI SDK 6 (`experimental_telemetry`) with the OpenTelemetry JS SDK: a
    /// generateText and a streamText call (`testdata/genai/record/vercel_ai.mjs`).
    pub const VERCEL_AI_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/vercel-ai-openai-chat.json");
    /// OpenInference's OpenAI instrumentation for JavaScript: a call and a streamed call
    /// (`testdata/genai/record/openinference_openai_js.mjs`).
    pub const OPENINFERENCE_JS_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/openinference-js-openai-chat.json");
    /// OpenLLMetry for JavaScript instrumenting OpenAI: a call and a streamed call
    /// (`testdata/genai/record/openllmetry_js.mjs`).
    pub const OPENLLMETRY_JS_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/openllmetry-js-openai-chat.json");
    /// OpenLLMetry's LangChain and OpenAI instrumentations: a `ChatOpenAI` call and a streamed
    /// one (`testdata/genai/record/openllmetry_langchain.py`).
    pub const OPENLLMETRY_LANGCHAIN_CHAT: &str =
        include_str!("../testdata/genai/openllmetry-langchain-chat.json");
    /// The official OpenTelemetry GenAI instrumentation of OpenAI (2.1b0): spans, and message
    /// content as log events in [`OTEL_GENAI_OPENAI_CHAT_LOGS`]
    /// (`testdata/genai/record/otel_genai_openai.py`).
    pub const OTEL_GENAI_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/otel-genai-openai-chat.json");
    pub const OTEL_GENAI_OPENAI_CHAT_LOGS: &str =
        include_str!("../testdata/genai/otel-genai-openai-chat.logs.json");
    pub const OPENINFERENCE_OPENAI_CHAT: &str =
        include_str!("../testdata/genai/openinference-openai-chat.json");
    pub const OTLP_TRACE: &str = include_str!("../testdata/otlp/trace.json");
    pub const OTLP_LOGS: &str = include_str!("../testdata/otlp/logs.json");
    pub const OTLP_METRICS: &str = include_str!("../testdata/otlp/metrics.json");
    pub const OTLP_EVENTS: &str = include_str!("../testdata/otlp/events.json");

    /// A traces batch decoded from an OTLP/JSON fixture.
    pub fn traces_batch(json: &str) -> Batch {
        let request: ExportTraceServiceRequest =
            crate::otlp_json::from_slice(json.as_bytes()).expect("fixture is valid OTLP/JSON");
        Batch::new(
            Payload::Traces(request.resource_spans),
            BatchContext::default(),
        )
    }

    /// A logs batch decoded from an OTLP/JSON fixture.
    pub fn logs_batch(json: &str) -> Batch {
        let request: crate::otlp::collector::logs::v1::ExportLogsServiceRequest =
            crate::otlp_json::from_slice(json.as_bytes()).expect("fixture is valid OTLP/JSON");
        Batch::new(
            Payload::Logs(request.resource_logs),
            BatchContext::default(),
        )
    }
}
