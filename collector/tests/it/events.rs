//! Custom events and scores sent by a real OTLP client, read back through the API: listed by
//! `/api/v1/events`, beside the spans in the trace detail, and as a score's count and mean per
//! summary group. Invalid scores are refused through `partial_success` and counted.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::{InMemoryLogExporter, LogBatch, LogExporter as _, SdkLoggerProvider};
use serde_json::json;

use crate::end_to_end::{Sent, Transport, resource, send};
use crate::harness::Collector;

const JSON: (&str, &str) = ("content-type", "application/json");

/// An event's name, span and attributes.
type Feedback = (&'static str, SpanId, Vec<(&'static str, AnyValue)>);

/// A helpfulness score on the chat span, a thumbs-up on the trace, and a custom event on the
/// chat span, through the Rust OTLP log exporter.
async fn send_feedback(collector: &Collector, sent: &Sent) {
    let recorded = InMemoryLogExporter::default();
    let provider = SdkLoggerProvider::builder()
        .with_simple_exporter(recorded.clone())
        .with_resource(resource("feedback-service"))
        .build();
    let logger = provider.logger("it");
    let trace_id = TraceId::from_hex(&sent.trace_id).expect("trace id");
    let chat = SpanId::from_hex(&sent.chat_span_id).expect("span id");
    let records: [Feedback; 3] = [
        (
            "llmscope.score",
            chat,
            vec![
                ("llmscope.score.name", "helpfulness".into()),
                ("llmscope.score.value", AnyValue::Double(0.9)),
                ("llmscope.score.comment", "short and right".into()),
            ],
        ),
        (
            "llmscope.score",
            SpanId::INVALID,
            vec![
                ("llmscope.score.name", "thumbs".into()),
                ("llmscope.score.value", AnyValue::Boolean(true)),
            ],
        ),
        (
            "user.clicked_retry",
            chat,
            vec![("ui.button", "retry".into())],
        ),
    ];
    for (name, span, attributes) in records {
        let mut record = logger.create_log_record();
        record.set_event_name(name);
        record.set_trace_context(trace_id, span, Some(TraceFlags::SAMPLED));
        for (k, v) in attributes {
            record.add_attribute(k, v);
        }
        logger.emit(record);
    }
    let logs = recorded.get_emitted_logs().expect("logs");
    let mut exporter = opentelemetry_otlp::LogExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("http://{}/v1/logs", collector.http))
        .build()
        .expect("log exporter");
    exporter.set_resource(&resource("feedback-service"));
    let pairs: Vec<_> = logs
        .iter()
        .map(|l| (&l.record, &l.instrumentation))
        .collect();
    exporter
        .export(LogBatch::new(&pairs))
        .await
        .expect("logs exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_and_custom_events_read_back_beside_their_trace() {
    let c = Collector::start().await;
    let sent = send(&c, Transport::HttpProtobuf, "svc-scored").await;
    send_feedback(&c, &sent).await;

    // Beside the spans, oldest first; the GenAI content events are the chat span's messages.
    let path = format!("/api/v1/traces/{}", sent.trace_id);
    let trace = c
        .eventually(&path, |t| {
            t["scores"].as_array().is_some_and(|s| s.len() == 2)
                && t["events"].as_array().is_some_and(|e| e.len() == 1)
        })
        .await;
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(3));
    let helpfulness = &trace["scores"][0];
    assert_eq!(helpfulness["name"], "helpfulness");
    assert_eq!(helpfulness["value"], 0.9);
    assert_eq!(helpfulness["data_type"], "numeric");
    assert_eq!(helpfulness["comment"], "short and right");
    assert_eq!(helpfulness["span_id"], sent.chat_span_id.as_str());
    let thumbs = &trace["scores"][1];
    assert_eq!(
        (&thumbs["value"], &thumbs["data_type"], &thumbs["span_id"]),
        (&json!(true), &json!("boolean"), &json!(null))
    );
    let event = &trace["events"][0];
    assert_eq!(event["name"], "user.clicked_retry");
    assert_eq!(event["attributes"]["ui.button"], "retry");
    assert_eq!(event["service"], "feedback-service");

    // Listed and filtered.
    let by_name = c.get("/api/v1/events?name=user.clicked_retry").await.json();
    assert_eq!(by_name["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(by_name["events"][0]["span_id"], sent.chat_span_id.as_str());
    let of_trace = c
        .get(&format!("/api/v1/events?trace_id={}", sent.trace_id))
        .await
        .json();
    let names: Vec<_> = of_trace["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        names,
        ["user.clicked_retry", "llmscope.score", "llmscope.score"],
        "newest first, no content events"
    );
    let other_service = c.get("/api/v1/events?service=svc-scored").await.json();
    assert_eq!(other_service["events"], json!([]));
    for (bad, says) in [
        ("trace_id=xyz", "not a trace id"),
        ("limit=0", "limit"),
        ("kind=score", "unknown parameter kind"),
        ("from=yesterday", "RFC 3339"),
    ] {
        let reply = c.get(&format!("/api/v1/events?{bad}")).await;
        assert_eq!(reply.status, 400, "{bad}");
        let error = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(error.contains(says), "{bad}: {error}");
    }

    // A score's count and mean per group of the summary.
    for (score, expected) in [
        (
            "helpfulness",
            json!({"name": "helpfulness", "count": 1, "mean": 0.9}),
        ),
        ("thumbs", json!({"name": "thumbs", "count": 1, "mean": 1.0})),
        (
            "nobody",
            json!({"name": "nobody", "count": 0, "mean": null}),
        ),
    ] {
        let path = format!("/api/v1/analytics/summary?group_by=model&score={score}");
        let summary = c.get(&path).await.json();
        assert_eq!(summary["groups"][0]["score"], expected, "{score}");
    }
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_scores_are_refused_with_partial_success_and_counted() {
    let c = Collector::start().await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
        .to_string();
    let trace = "5b8efff798038103d269b633813fc60c";
    let record = |attributes: serde_json::Value| {
        json!({"timeUnixNano": now, "eventName": "llmscope.score", "traceId": trace,
               "attributes": attributes})
    };
    let attr = |k: &str, v: serde_json::Value| json!({"key": k, "value": v});
    let request = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        record(json!([attr("llmscope.score.value", json!({"doubleValue": 1.0}))])),
        record(json!([
            attr("llmscope.score.name", json!({"stringValue": "helpfulness"})),
            attr("llmscope.score.value", json!({"arrayValue": {"values": []}})),
        ])),
        record(json!([
            attr("llmscope.score.name", json!({"stringValue": "helpfulness"})),
            attr("llmscope.score.value", json!({"intValue": "4"})),
        ])),
        {"timeUnixNano": now, "eventName": "build.finished", "traceId": trace, "attributes": []},
    ]}]}]});
    let reply = c
        .post_otlp("/v1/logs", &[JSON], request.to_string().into_bytes())
        .await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    let rejected = &body["partialSuccess"]["rejectedLogRecords"];
    // proto3 JSON writes int64 as a string and reads either form.
    assert!(rejected == 2 || rejected == "2", "{body}");
    let message = body["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("2 items refused")
            && message.contains("llmscope.score.name must be a non-empty string"),
        "{message}"
    );
    let counted = c.telemetry().value(
        "llmscope_receiver_refused_items_total",
        &[
            ("receiver", "otlp"),
            ("transport", "http"),
            ("signal", "logs"),
            ("reason", "invalid_score"),
        ],
    );
    assert_eq!(counted, 2);
    // The rest of the request is stored.
    let events = c
        .eventually(&format!("/api/v1/events?trace_id={trace}"), |e| {
            e["events"].as_array().is_some_and(|e| e.len() == 2)
        })
        .await;
    assert_eq!(events["events"][0]["name"], "build.finished");
    assert_eq!(events["events"][1]["attributes"]["llmscope.score.value"], 4);
    assert!(c.stop().await);
}
