//! The default pipeline's processors end to end: spans with PII go in; the stored rows hold no
//! PII, carry the right costs, and one injected latency spike is exactly one anomaly.

use hyper::StatusCode;
use llmscope_core::Payload;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::semconv as sc;
use llmscope_core::test_util::{fixtures, kv, span, traces};
use prost::Message;
use serde_json::Value as J;

use crate::harness::Collector;

const JSON: (&str, &str) = ("content-type", "application/json");
const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");

/// Every text column of every stored span and log row, concatenated.
fn stored_text(db: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("database");
    let mut all = String::new();
    for sql in [
        "SELECT coalesce(attributes,'') || coalesce(input_messages,'') || coalesce(output_messages,'') || coalesce(system_instructions,'') || events FROM spans",
        "SELECT coalesce(body,'') || attributes || coalesce(input_messages,'') || coalesce(output_messages,'') FROM logs",
    ] {
        let mut stmt = conn.prepare(sql).expect("query");
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).expect("rows");
        for row in rows {
            all.push_str(&row.expect("row"));
            all.push('\n');
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_rows_hold_no_pii_and_carry_costs() {
    let c = Collector::start().await;
    for fixture in [
        fixtures::OPENLLMETRY_OPENAI_CHAT,
        fixtures::OPENINFERENCE_OPENAI_CHAT,
    ] {
        let reply = c
            .post_otlp("/v1/traces", &[JSON], fixture.as_bytes().to_vec())
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let secrets = traces(
        "billing",
        vec![span(
            9,
            1,
            "chat",
            vec![
                kv(sc::OPERATION_NAME, "chat"),
                kv(sc::REQUEST_MODEL, "claude-3-5-haiku-20241022"),
                kv(sc::PROVIDER_NAME, "anthropic"),
                kv(sc::USAGE_INPUT_TOKENS, 1000i64),
                kv(sc::USAGE_OUTPUT_TOKENS, 500i64),
                kv(sc::USAGE_CACHE_READ_INPUT_TOKENS, 600i64),
                kv(sc::USAGE_CACHE_CREATION_INPUT_TOKENS, 200i64),
                kv(
                    "input.value",
                    "card 4111 1111 1111 1111, key sk-proj-abcdefghijklmnopqrstuvwx, ssn 123-45-6789",
                ),
            ],
        )],
    );
    let Payload::Traces(resource_spans) = secrets.payload else {
        unreachable!()
    };
    let body = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
    assert_eq!(
        c.post_otlp("/v1/traces", &[PROTO], body).await.status,
        StatusCode::OK
    );

    let list = c
        .eventually("/api/v1/traces", |l| {
            l["traces"].as_array().is_some_and(|t| t.len() == 3)
        })
        .await;
    let text = stored_text(&c.db);
    for pii in [
        "john.smith@example.org",
        "jane.doe@example.com",
        "415 555 0100",
        "4111 1111",
        "sk-proj-abc",
        "123-45-6789",
    ] {
        assert!(!text.contains(pii), "{pii} reached the database");
    }
    assert!(text.contains("[REDACTED:EMAIL]") && text.contains("[REDACTED:CREDIT_CARD]"));

    // gpt-4o-mini per call: 32 * $0.15 + 10 * $0.075 + 17 * $0.60 per million = $15.75e-6.
    // claude-3-5-haiku: 200 * 0.80 + 600 * 0.08 + 200 * 1.00 + 500 * 4.00 per million = $2,408e-6.
    let mut costs: Vec<f64> = list["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .map(|t| t["cost_usd"].as_f64().expect("cost"))
        .collect();
    costs.sort_by(f64::total_cmp);
    let want = [2.0 * 15.75e-6, 2.0 * 15.75e-6, 2408e-6];
    for (got, want) in costs.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{costs:?}");
    }
    let trace_id = hex::encode([9u8; 16]);
    let trace = c.get(&format!("/api/v1/traces/{trace_id}")).await.json();
    let span = &trace["spans"][0];
    assert_eq!(
        span["attributes"][sc::PII_TYPES],
        serde_json::json!(["credit_card", "openai_api_key", "ssn"])
    );
    let input_usd = span["attributes"]["llmscope.cost.input_usd"]
        .as_f64()
        .expect("input cost");
    assert!((input_usd - 408e-6).abs() < 1e-12, "{input_usd}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_latency_spike_is_exactly_one_anomaly() {
    let c = Collector::start().await;
    let base = 1_795_766_744_000_000_000u64;
    let calls: Vec<_> = (0..121u64)
        .map(|i| {
            let mut s = span(
                (i % 250) as u8 + 1,
                (i % 250) as u8 + 1,
                "chat gpt-4o-mini",
                vec![
                    kv(sc::OPERATION_NAME, "chat"),
                    kv(sc::PROVIDER_NAME, "openai"),
                    kv(sc::REQUEST_MODEL, "gpt-4o-mini"),
                    kv(sc::USAGE_INPUT_TOKENS, 500i64),
                    kv(sc::USAGE_OUTPUT_TOKENS, 200i64),
                ],
            );
            let latency_ms = if i == 100 {
                8_000.0
            } else {
                800.0 * (1.0 + 0.1 * (i as f64).sin())
            };
            s.start_time_unix_nano = base + i * 1_000_000_000;
            s.end_time_unix_nano = s.start_time_unix_nano + (latency_ms * 1e6) as u64;
            s
        })
        .collect();
    for chunk in calls.chunks(20) {
        let Payload::Traces(resource_spans) = traces("agent", chunk.to_vec()).payload else {
            unreachable!()
        };
        let body = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
        assert_eq!(
            c.post_otlp("/v1/traces", &[PROTO], body).await.status,
            StatusCode::OK
        );
    }
    let found = c
        .eventually("/api/v1/anomalies", |a| {
            !a["anomalies"].as_array().is_none_or(Vec::is_empty)
        })
        .await;
    // Let the rest of the batches land, then count again.
    c.eventually("/api/v1/traces?limit=200", |l| {
        l["traces"].as_array().is_some_and(|t| t.len() == 121)
    })
    .await;
    let found = {
        let again = c.get("/api/v1/anomalies").await.json();
        assert_eq!(again, found, "nothing more was reported");
        again
    };
    let anomalies = found["anomalies"].as_array().expect("anomalies");
    assert_eq!(anomalies.len(), 1, "{found:#}");
    let a = &anomalies[0];
    assert_eq!(a["kind"], "latency");
    assert_eq!(a["model"], "gpt-4o-mini");
    assert_eq!(a["service"], "agent");
    assert_eq!(a["value"], 8_000.0);
    assert!(
        a["baseline"]
            .as_f64()
            .is_some_and(|b| (700.0..900.0).contains(&b)),
        "{a}"
    );
    let spiked = c
        .get(&format!(
            "/api/v1/traces/{}",
            a["trace_id"].as_str().expect("trace id")
        ))
        .await
        .json();
    let marked: Vec<&J> = spiked["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .filter(|s| s["attributes"][sc::ANOMALY_KIND] == "latency")
        .collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["span_id"], a["span_id"]);
    let filtered = c
        .get("/api/v1/anomalies?model=other&from=2026-01-01T00:00:00Z")
        .await
        .json();
    assert_eq!(filtered["anomalies"], serde_json::json!([]));
}
