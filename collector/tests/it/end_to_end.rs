//! The Rust `opentelemetry-otlp` exporters send spans and GenAI log events over gRPC, HTTP
//! protobuf and HTTP JSON; everything is read back, normalized, through the query API.

use std::collections::HashMap;

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, Key, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{InMemoryLogExporter, LogBatch, LogExporter as _, SdkLoggerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanExporter as _};
use serde_json::{Value as J, json};

use crate::harness::Collector;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

/// One agent run: a root span with the session and user, an OpenLLMetry-style chat span with
/// deprecated names whose content arrives as log events, and a tool span.
pub(crate) struct Sent {
    pub trace_id: String,
    pub chat_span_id: String,
}

pub(crate) fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_owned())
        .build()
}

pub(crate) async fn send(collector: &Collector, transport: Transport, service: &str) -> Sent {
    // Record with the real SDK, then export with the real OTLP exporter inside this runtime.
    let recorded = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(recorded.clone())
        .with_resource(resource(service))
        .build();
    let tracer = provider.tracer("it");
    let root = tracer
        .span_builder("agent-run")
        .with_attributes([
            KeyValue::new("session.id", "sess-1"),
            KeyValue::new("user.id", "user-1"),
        ])
        .start(&tracer);
    let cx = Context::current_with_span(root);
    let mut chat = tracer
        .span_builder("chat gpt-4o-mini")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("gen_ai.system", "openai"),
            KeyValue::new("llm.request.type", "chat"),
            KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
            KeyValue::new("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
            KeyValue::new("gen_ai.response.id", format!("chatcmpl-{service}")),
            KeyValue::new("gen_ai.usage.prompt_tokens", 42),
            KeyValue::new("gen_ai.usage.completion_tokens", 17),
            KeyValue::new("gen_ai.usage.cache_read_input_tokens", 10),
        ])
        .start_with_context(&tracer, &cx);
    let chat_ctx = chat.span_context().clone();
    chat.end();
    let mut tool = tracer
        .span_builder("get_weather")
        .with_attributes([KeyValue::new("traceloop.span.kind", "tool")])
        .start_with_context(&tracer, &cx);
    tool.end();
    cx.span().end();
    let spans = recorded.get_finished_spans().expect("spans");
    assert_eq!(spans.len(), 3);

    let recorded_logs = InMemoryLogExporter::default();
    let logger_provider = SdkLoggerProvider::builder()
        .with_simple_exporter(recorded_logs.clone())
        .with_resource(resource(service))
        .build();
    let logger = logger_provider.logger("it");
    let body = |pairs: &[(&'static str, AnyValue)]| {
        let map: HashMap<Key, AnyValue> = pairs
            .iter()
            .map(|(k, v)| (Key::new(*k), v.clone()))
            .collect();
        AnyValue::Map(Box::new(map))
    };
    for (name, content) in [
        (
            "gen_ai.user.message",
            body(&[("content", AnyValue::from("What is the weather in Paris?"))]),
        ),
        (
            "gen_ai.choice",
            body(&[
                ("index", AnyValue::Int(0)),
                ("finish_reason", AnyValue::from("stop")),
                (
                    "message",
                    body(&[("content", AnyValue::from("Sunny, 21°C."))]),
                ),
            ]),
        ),
    ] {
        let mut record = logger.create_log_record();
        record.set_event_name(name);
        record.set_body(content);
        record.set_trace_context(
            chat_ctx.trace_id(),
            chat_ctx.span_id(),
            Some(chat_ctx.trace_flags()),
        );
        logger.emit(record);
    }
    let logs = recorded_logs.get_emitted_logs().expect("logs");
    assert_eq!(logs.len(), 2);

    let (protocol, traces_url, logs_url) = match transport {
        Transport::Grpc => (
            Protocol::Grpc,
            format!("http://{}", collector.grpc),
            format!("http://{}", collector.grpc),
        ),
        Transport::HttpProtobuf => (
            Protocol::HttpBinary,
            format!("http://{}/v1/traces", collector.http),
            format!("http://{}/v1/logs", collector.http),
        ),
        Transport::HttpJson => (
            Protocol::HttpJson,
            format!("http://{}/v1/traces", collector.http),
            format!("http://{}/v1/logs", collector.http),
        ),
    };
    // Logs first: content must join its span whichever arrives first.
    let mut log_exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::LogExporter::builder()
            .with_tonic()
            .with_endpoint(logs_url)
            .build(),
        _ => opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(logs_url)
            .build(),
    }
    .expect("log exporter");
    log_exporter.set_resource(&resource(service));
    let pairs: Vec<_> = logs
        .iter()
        .map(|l| (&l.record, &l.instrumentation))
        .collect();
    log_exporter
        .export(LogBatch::new(&pairs))
        .await
        .expect("logs exported");

    let mut span_exporter = match transport {
        Transport::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(traces_url)
            .build(),
        _ => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(traces_url)
            .build(),
    }
    .expect("span exporter");
    span_exporter.set_resource(&resource(service));
    span_exporter.export(spans).await.expect("spans exported");

    Sent {
        trace_id: chat_ctx.trace_id().to_string(),
        chat_span_id: chat_ctx.span_id().to_string(),
    }
}

async fn check_trace(collector: &Collector, sent: &Sent, service: &str) {
    let trace = collector
        .eventually(&format!("/api/v1/traces/{}", sent.trace_id), |t| {
            t["spans"].as_array().is_some_and(|s| s.len() == 3)
        })
        .await;
    assert_eq!(trace["trace_id"], sent.trace_id);
    let spans = trace["spans"].as_array().expect("spans");
    let root = spans
        .iter()
        .find(|s| s["name"] == "agent-run")
        .expect("root");
    assert_eq!(root["parent_span_id"], J::Null);
    assert_eq!(root["service"], service);
    assert_eq!(root["gen_ai"], J::Null, "the root is not a GenAI span");
    assert_eq!(root["attributes"]["session.id"], "sess-1");

    let chat = spans
        .iter()
        .find(|s| s["span_id"] == sent.chat_span_id.as_str())
        .expect("chat span");
    assert_eq!(chat["parent_span_id"], root["span_id"]);
    assert_eq!(chat["kind"], "client");
    let g = &chat["gen_ai"];
    assert_eq!(g["operation"], "chat");
    assert_eq!(g["provider"], "openai");
    assert_eq!(g["request_model"], "gpt-4o-mini");
    assert_eq!(g["response_model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(g["response_id"], format!("chatcmpl-{service}"));
    assert_eq!(
        (g["input_tokens"].as_i64(), g["output_tokens"].as_i64()),
        (Some(42), Some(17))
    );
    assert_eq!(g["cache_read_tokens"], 10);
    // gpt-4o-mini: 32 uncached * $0.15 + 10 cached * $0.075 + 17 out * $0.60, per million.
    let cost = g["cost_usd"].as_f64().expect("priced");
    assert!((cost - 15.75e-6).abs() < 1e-12, "{cost}");
    assert_eq!(g["session_id"], "sess-1", "propagated from the root");
    assert_eq!(
        g["input_messages"],
        json!([{"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]}])
    );
    assert_eq!(
        g["output_messages"],
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "Sunny, 21°C."}], "finish_reason": "stop"}])
    );
    let tool = spans
        .iter()
        .find(|s| s["name"] == "get_weather")
        .expect("tool span");
    assert_eq!(tool["gen_ai"]["operation"], "execute_tool");
    assert_eq!(tool["gen_ai"]["model_call"], false);
    assert_eq!(tool["parent_span_id"], root["span_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_log_events_from_real_otlp_clients_read_back_normalized() {
    let collector = Collector::start().await;
    let transports = [
        (Transport::Grpc, "svc-grpc"),
        (Transport::HttpProtobuf, "svc-http-proto"),
        (Transport::HttpJson, "svc-http-json"),
    ];
    let mut sent = Vec::new();
    for (transport, service) in transports {
        let s = send(&collector, transport, service).await;
        check_trace(&collector, &s, service).await;
        sent.push(s);
    }

    // The trace list: newest first, one per transport, totals counted per call.
    let list = collector.get("/api/v1/traces?limit=10").await.json();
    let traces = list["traces"].as_array().expect("traces");
    assert_eq!(traces.len(), 3);
    for t in traces {
        assert_eq!(t["root_name"], "agent-run");
        assert_eq!(
            (t["span_count"].as_i64(), t["llm_calls"].as_i64()),
            (Some(3), Some(1))
        );
        assert_eq!(
            (t["input_tokens"].as_i64(), t["output_tokens"].as_i64()),
            (Some(42), Some(17))
        );
        assert_eq!(t["error"], false);
    }
    let by_service = collector
        .get("/api/v1/traces?service=svc-http-json")
        .await
        .json();
    assert_eq!(by_service["traces"][0]["trace_id"], sent[2].trace_id);
    assert_eq!(by_service["traces"].as_array().map(Vec::len), Some(1));

    // The summary: three calls of one model, by one user.
    let summary = collector
        .get("/api/v1/analytics/summary?group_by=model")
        .await
        .json();
    let g = &summary["groups"][0];
    assert_eq!(g["key"], json!({"model": "gpt-4o-mini"}));
    assert_eq!(
        (g["requests"].as_i64(), g["errors"].as_i64()),
        (Some(3), Some(0))
    );
    assert_eq!(
        (g["input_tokens"].as_i64(), g["output_tokens"].as_i64()),
        (Some(126), Some(51))
    );
    assert_eq!(g["cache_read_tokens"], 30);
    let cost = g["cost_usd"].as_f64().expect("summed cost");
    assert!((cost - 3.0 * 15.75e-6).abs() < 1e-12, "{cost}");
    assert!(g["latency_ms"]["p99"].as_f64().is_some_and(|p| p >= 0.0));
    let by_user = collector
        .get("/api/v1/analytics/summary?group_by=user")
        .await
        .json();
    assert_eq!(by_user["groups"][0]["key"], json!({"user": "user-1"}));
    let by_service = collector
        .get("/api/v1/analytics/summary?group_by=service")
        .await
        .json();
    assert_eq!(by_service["groups"].as_array().map(Vec::len), Some(3));

    assert!(collector.stop().await, "shutdown flushed everything");
}
