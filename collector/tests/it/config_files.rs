//! Every example in `otel-config/` loads, and the collector starts on it.

use std::path::PathBuf;

use llmscope::config::Config;
use llmscope_core::test_util::fixtures;

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("otel-config/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_loads() {
    let files = examples();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("example");
        // The sidecar forwards to a gateway it must be told of.
        let lookup = |var: &str| match var {
            "LLMSCOPE_GATEWAY_ENDPOINT" => Some("http://127.0.0.1:4317".to_owned()),
            _ => std::env::var(var).ok(),
        };
        if let Err(e) = Config::parse(&file.display().to_string(), &text, &lookup) {
            panic!("{e}");
        }
    }
}

#[test]
fn the_default_example_is_the_builtin_default() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config/default.yaml");
    let text = std::fs::read_to_string(dir).expect("default.yaml");
    assert_eq!(text, llmscope::config::DEFAULT_CONFIG);
}

/// The ClickHouse example runs end to end: spans in over OTLP, read back from ClickHouse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clickhouse_example_stores_and_answers_from_clickhouse() {
    let Some(url) = llmscope_core::test_util::service_url("LLMSCOPE_TEST_CLICKHOUSE_URL") else {
        return;
    };
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config/clickhouse.yaml");
    let text = std::fs::read_to_string(file).expect("clickhouse.yaml");
    let database = format!("llmscope_example_{}", std::process::id());
    let queue_dir = tempfile::tempdir().expect("queue dir");
    let config = Config::parse("clickhouse.yaml", &text, &|var| match var {
        "CLICKHOUSE_URL" => Some(url.clone()),
        "CLICKHOUSE_DATABASE" => Some(database.clone()),
        v if v.starts_with("LLMSCOPE_") && v.ends_with("_ENDPOINT") => Some("127.0.0.1:0".into()),
        "LLMSCOPE_QUEUE_DIR" => Some(queue_dir.path().display().to_string()),
        _ => None,
    })
    .expect("clickhouse.yaml");
    serves_a_fixture_end_to_end(config, fixtures::OPENLLMETRY_OPENAI_CHAT).await;
    let client = clickhouse::Client::default().with_url(url);
    let _ = client
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
}

/// The PostgreSQL example runs end to end: spans in over OTLP, read back from PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_example_stores_and_answers_from_postgres() {
    let Some(url) = llmscope_core::test_util::service_url("LLMSCOPE_TEST_POSTGRES_URL") else {
        return;
    };
    let database = format!("llmscope_example_{}", std::process::id());
    let queue_dir = tempfile::tempdir().expect("queue dir");
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .expect("create database");
    let base = url
        .rsplit_once('/')
        .map_or(url.as_str(), |(b, _)| b)
        .to_owned();
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config/postgres.yaml");
    let text = std::fs::read_to_string(file).expect("postgres.yaml");
    let config = Config::parse("postgres.yaml", &text, &|var| match var {
        "POSTGRES_URL" => Some(format!("{base}/{database}")),
        v if v.starts_with("LLMSCOPE_") && v.ends_with("_ENDPOINT") => Some("127.0.0.1:0".into()),
        "LLMSCOPE_QUEUE_DIR" => Some(queue_dir.path().display().to_string()),
        _ => None,
    })
    .expect("postgres.yaml");
    serves_a_fixture_end_to_end(config, fixtures::OPENINFERENCE_OPENAI_CHAT).await;
    let _ = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await;
}

/// Starts the collector on `config`, sends a recorded fixture over OTLP/HTTP and reads its trace,
/// calls and summary back through the API.
async fn serves_a_fixture_end_to_end(config: Config, fixture: &str) {
    let c =
        crate::harness::Collector::start_with(config, tempfile::tempdir().expect("tempdir")).await;
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[("content-type", "application/json")],
            fixture.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(reply.status, hyper::StatusCode::OK);
    let list = c
        .eventually("/api/v1/traces", |l| l["traces"][0]["llm_calls"] == 2)
        .await;
    let trace_id = list["traces"][0]["trace_id"]
        .as_str()
        .expect("trace id")
        .to_owned();
    let trace = c.get(&format!("/api/v1/traces/{trace_id}")).await.json();
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(3));
    let summary = c
        .get("/api/v1/analytics/summary?group_by=model")
        .await
        .json();
    assert_eq!(summary["groups"][0]["requests"], 2);
    assert!(c.stop().await);
}
