//! Rate limits: per key, refusals OTLP-correct (HTTP 429 with Retry-After, gRPC
//! RESOURCE_EXHAUSTED with RetryInfo), one limit shared by several collectors through Redis,
//! and the local fallback while Redis is away.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};
use llmscope::config::Config;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use llmscope_core::test_util::fixtures;
use serde_json::json;

use crate::harness::Collector;

const ADMIN: &str = "admin-token-0123456789";

fn config(db: &std::path::Path, limits: &str) -> Config {
    let db = db.display().to_string();
    let text = llmscope::config::DEFAULT_CONFIG
        .replace(
            "extensions:\n  api:",
            &format!("extensions:\n  auth:\n    admin_token: {ADMIN}\n    limits:\n{limits}  api:"),
        )
        .replace(
            "  extensions: [api, alerts]",
            "  extensions: [auth, api, alerts]",
        );
    Config::parse("limits.yaml", &text, &|var| match var {
        "LLMSCOPE_SQLITE_PATH" => Some(db.clone()),
        "LLMSCOPE_QUEUE_DIR" => Some(format!("{db}.queue")),
        v if v.ends_with("_ENDPOINT") => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .expect("limits config")
}

async fn key(c: &Collector) -> String {
    let body = json!({"project": "team-a", "name": "limits"})
        .to_string()
        .into_bytes();
    let auth = format!("Bearer {ADMIN}");
    let reply = c
        .request(
            Method::POST,
            format!("http://{}/api/v1/keys", c.api),
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            body,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    reply.json()["key"].as_str().expect("key").to_owned()
}

async fn send(c: &Collector, key: &str) -> (StatusCode, Option<String>) {
    let auth = format!("Bearer {key}");
    let r = c
        .post_otlp(
            "/v1/traces",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            fixtures::OTLP_TRACE.as_bytes().to_vec(),
        )
        .await;
    let retry = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (r.status, retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_is_refused_retryably_on_both_transports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("m.db");
    let c = Collector::start_with(
        config(
            &db,
            "      per_key: {requests_per_second: 0.5, burst_seconds: 4}\n",
        ),
        dir,
    )
    .await;
    let key = key(&c).await;
    assert_eq!(send(&c, &key).await.0, StatusCode::OK);
    assert_eq!(send(&c, &key).await.0, StatusCode::OK);
    let (status, retry_after) = send(&c, &key).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&secs), "{secs}");

    let mut grpc = TraceServiceClient::connect(format!("http://{}", c.grpc))
        .await
        .expect("connect");
    let mut request = tonic::Request::new(
        serde_json::from_str::<ExportTraceServiceRequest>(fixtures::OTLP_TRACE).expect("request"),
    );
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("metadata"),
    );
    let status = grpc.export(request).await.expect_err("limited");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    use tonic_types::StatusExt;
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.is_some_and(|d| d > Duration::ZERO));
    let refused = c.telemetry().value(
        "llmscope_ratelimit_refused_total",
        &[("limit", "key requests")],
    );
    assert_eq!(refused, 2);
}

fn redis_url() -> Option<String> {
    llmscope_core::test_util::service_url("LLMSCOPE_TEST_REDIS_URL")
}

/// Accepted requests when `rounds` requests alternate between the collectors, as fast as they go.
async fn burst(collectors: &[&Collector], key: &str, rounds: usize) -> (usize, Duration) {
    let start = Instant::now();
    let mut accepted = 0;
    for i in 0..rounds {
        if send(collectors[i % collectors.len()], key).await.0 == StatusCode::OK {
            accepted += 1;
        }
    }
    (accepted, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_share_one_limit_through_redis() {
    let Some(url) = redis_url() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("shared.db");
    let limits = format!(
        "      per_key: {{requests_per_second: 2, burst_seconds: 2}}\n      redis_url: {url}\n      collectors: 2\n"
    );
    let a =
        Collector::start_with(config(&db, &limits), tempfile::tempdir().expect("tempdir")).await;
    let b =
        Collector::start_with(config(&db, &limits), tempfile::tempdir().expect("tempdir")).await;
    let key = key(&a).await;
    let (accepted, elapsed) = burst(&[&a, &b], &key, 20).await;
    // Burst 4 plus 2/s for the time the burst took; two separate limits would let 8+ through.
    let allowed = 4 + (2.0 * elapsed.as_secs_f64()).ceil() as usize;
    assert!(
        accepted >= 4 && accepted <= allowed,
        "accepted {accepted} in {elapsed:?}, limit {allowed}"
    );
    assert_eq!(
        a.telemetry()
            .value("llmscope_ratelimit_redis_fallback_total", &[]),
        0
    );
    assert_eq!(
        b.telemetry()
            .value("llmscope_ratelimit_redis_fallback_total", &[]),
        0
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A Redis server of the test's own on `port`, listening when this returns.
pub(crate) fn redis_server(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_continues_on_local_limits_while_redis_is_away() {
    if redis_url().is_none() {
        return;
    }
    let port = free_port();
    let mut redis = redis_server(port);
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("m.db");
    let limits = format!(
        "      per_key: {{requests_per_second: 100, burst_seconds: 1}}\n      redis_url: redis://127.0.0.1:{port}\n      collectors: 2\n"
    );
    let c =
        Collector::start_with(config(&db, &limits), tempfile::tempdir().expect("tempdir")).await;
    let key = key(&c).await;
    let fallbacks = || {
        c.telemetry()
            .value("llmscope_ratelimit_redis_fallback_total", &[])
    };
    assert_eq!(send(&c, &key).await.0, StatusCode::OK);
    assert_eq!(fallbacks(), 0, "shared limits while Redis is up");

    let _ = redis.kill();
    let _ = redis.wait();
    for _ in 0..5 {
        assert_eq!(
            send(&c, &key).await.0,
            StatusCode::OK,
            "never an error for the client"
        );
    }
    assert!(fallbacks() > 0, "counted");

    let _redis = RedisGuard(redis_server(port));
    let mut shared_again = false;
    for _ in 0..50 {
        let before = fallbacks();
        assert_eq!(send(&c, &key).await.0, StatusCode::OK);
        if fallbacks() == before {
            shared_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shared_again, "shared limits resume once Redis is back");
}

/// Stops the Redis server when dropped.
pub(crate) struct RedisGuard(pub(crate) Child);

impl Drop for RedisGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_rate_holds_on_average_whatever_the_request_size() {
    rate_holds_on_average("").await;
    if let Some(url) = redis_url() {
        rate_holds_on_average(&format!("      redis_url: {url}\n")).await;
    }
}

async fn rate_holds_on_average(redis: &str) {
    use prost::Message as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("m.db");
    let limits = format!("      per_key: {{spans_per_second: 100, burst_seconds: 1}}\n{redis}");
    let c = Collector::start_with(config(&db, &limits), dir).await;
    let key = key(&c).await;
    let auth = format!("Bearer {key}");
    // Requests of 500 spans, five times the burst, for 3 s.
    let spans: Vec<_> = (0..500u32)
        .map(|i| llmscope_core::test_util::span(1, (i % 255 + 1) as u8, "s", vec![]))
        .collect();
    let body = llmscope_core::test_util::traces_request("bulk", spans).encode_to_vec();
    let started = std::time::Instant::now();
    let (mut accepted, mut refused) = (0u64, 0u64);
    while started.elapsed() < Duration::from_secs(3) {
        let reply = c
            .post_otlp(
                "/v1/traces",
                &[
                    ("content-type", "application/x-protobuf"),
                    ("authorization", &auth),
                ],
                body.clone(),
            )
            .await;
        match reply.status {
            StatusCode::OK => accepted += 500,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The first request passes on a full bucket and leaves a 4 s debt: nothing more within 3 s.
    // (Capped at one burst, as before, each second let 500 more through.)
    assert_eq!(
        accepted, 500,
        "{accepted} spans in 3 s at 100 spans/s ({redis})"
    );
    assert!(refused > 10);
}
