//! `/metrics` as Prometheus' own tools read it.

use std::io::Write as _;
use std::process::{Command, Stdio};

use hyper::StatusCode;

use crate::harness::Collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_metrics_page() {
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            std::env::var("LLMSCOPE_REQUIRE_SERVICES").as_deref() != Ok("1"),
            "promtool is not installed (Debian: apt-get install prometheus) but LLMSCOPE_REQUIRE_SERVICES=1"
        );
        eprintln!("skipping: promtool is not installed");
        return;
    }
    let c = Collector::start().await;
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[("content-type", "application/json")],
            llmscope_core::test_util::fixtures::OPENLLMETRY_OPENAI_CHAT
                .as_bytes()
                .to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    c.eventually("/api/v1/traces", |t| {
        t["traces"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let page = c.get("/metrics").await;
    assert_eq!(page.status, StatusCode::OK);
    let text = String::from_utf8(page.body).expect("utf-8");
    assert!(
        text.contains("llmscope_receiver_accepted_items_total")
            && text.contains("# TYPE gen_ai_client_token_usage histogram")
            && text.contains("gen_ai_client_operation_duration_seconds_bucket{"),
        "{text}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = promtool.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.stop().await);
}

/// Every metric the collector reports is in the configuration reference, by its full name.
#[test]
fn every_metric_is_documented() {
    let docs = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config/README.md"),
    )
    .expect("otel-config/README.md");
    let names = llmscope::telemetry::metrics::ALL
        .iter()
        .map(|m| m.name)
        .chain(llmscope::genai_metrics::NAMES);
    for name in names {
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not documented"
        );
    }
}
