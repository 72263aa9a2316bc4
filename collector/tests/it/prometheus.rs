//! A real Prometheus (Debian's `prometheus` package) scrapes a running collector: the GenAI
//! metrics add up to the known input and to what the query API reports, and every PromQL panel
//! of `deploy/grafana` evaluates.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hyper::{Method, StatusCode};
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::semconv as sc;
use llmscope_core::test_util::{kv, span, traces};
use llmscope_core::{Batch, Payload};
use opentelemetry_proto::tonic::trace::v1::Status;
use prost::Message as _;
use serde_json::Value as J;

use crate::grafana::{dashboards, panels};
use crate::harness::Collector;
use crate::limits::free_port;

/// A Prometheus of the test's own, scraping one target every second; killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// `None` (the test skips) when Prometheus is not installed, unless services are required.
    fn start(target: std::net::SocketAddr) -> Option<Self> {
        if Command::new("prometheus")
            .arg("--version")
            .output()
            .is_err()
        {
            assert!(
                std::env::var("LLMSCOPE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "prometheus is not installed (Debian: apt-get install prometheus) but LLMSCOPE_REQUIRE_SERVICES=1"
            );
            eprintln!("skipping: prometheus is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 scrape_configs:\n  - job_name: llmscope\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus starts");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// Prometheus' answer to the instant query `expr`.
    async fn get(&self, c: &Collector, expr: &str) -> (StatusCode, J) {
        let url = format!("{}/api/v1/query?query={}", self.url, encode(expr));
        let reply = c.request(Method::GET, url, &[], Vec::new()).await;
        (reply.status, reply.json())
    }

    /// The result of the instant query `expr`; panics unless Prometheus accepts it.
    async fn query(&self, c: &Collector, expr: &str) -> Vec<J> {
        let (status, body) = self.get(c, expr).await;
        assert_eq!(status, StatusCode::OK, "{expr}: {body}");
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The single value of `expr` (a sum), once it is `ready`, or after 30 s.
    async fn value(&self, c: &Collector, expr: &str, ready: impl Fn(f64) -> bool) -> f64 {
        let mut last = f64::NAN;
        for _ in 0..300 {
            if let Ok((StatusCode::OK, body)) =
                tokio::time::timeout(Duration::from_secs(2), self.get(c, expr)).await
            {
                last = body["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                if ready(last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        last
    }
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Default)]
struct Load {
    calls: u64,
    errors: u64,
    input: i64,
    output: i64,
    cache_read: i64,
    reasoning: i64,
}

/// `n` priced calls (gpt-4o-mini), half from each of two services, every fifth failed.
fn calls(first: u8, n: u8, load: &mut Load) -> Vec<(String, Vec<u8>)> {
    let mut by_service: Vec<(String, Vec<_>)> = vec![
        ("chat-api".into(), Vec::new()),
        ("batch".into(), Vec::new()),
    ];
    for i in first..first + n {
        let input = 1000 + i64::from(i) * 10;
        let output = 50 + i64::from(i);
        let mut s = span(
            i,
            i,
            "chat gpt-4o-mini",
            vec![
                kv(sc::OPERATION_NAME, "chat"),
                kv(sc::PROVIDER_NAME, "openai"),
                kv(sc::REQUEST_MODEL, "gpt-4o-mini"),
                kv(sc::RESPONSE_MODEL, "gpt-4o-mini-2024-07-18"),
                kv(sc::USAGE_INPUT_TOKENS, input),
                kv(sc::USAGE_OUTPUT_TOKENS, output),
                kv(sc::USAGE_CACHE_READ_INPUT_TOKENS, 512i64),
                kv(sc::USAGE_REASONING_OUTPUT_TOKENS, 8i64),
            ],
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64;
        s.start_time_unix_nano = now - 2_000_000_000;
        s.end_time_unix_nano = now - 2_000_000_000 + 300_000_000 + u64::from(i) * 10_000_000;
        if i % 5 == 0 {
            s.status = Some(Status {
                code: 2,
                message: "overloaded".into(),
            });
            load.errors += 1;
        }
        load.calls += 1;
        load.input += input;
        load.output += output;
        load.cache_read += 512;
        load.reasoning += 8;
        by_service[usize::from(i % 2)].1.push(s);
    }
    by_service
        .into_iter()
        .map(|(service, spans)| {
            let Batch {
                payload: Payload::Traces(resource_spans),
                ..
            } = traces(&service, spans)
            else {
                unreachable!("a traces batch")
            };
            (
                service,
                ExportTraceServiceRequest { resource_spans }.encode_to_vec(),
            )
        })
        .collect()
}

async fn send(c: &Collector, requests: Vec<(String, Vec<u8>)>) {
    for (_, body) in requests {
        let reply = c
            .post_otlp(
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                body,
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_genai_metrics_and_evaluates_every_promql_panel() {
    let c = Collector::start().await;
    let Some(prometheus) = Prometheus::start(c.api) else {
        return;
    };
    let mut load = Load::default();
    // Two rounds over the same series, so rates and increases have something to measure.
    send(&c, calls(1, 20, &mut load)).await;
    let first = prometheus
        .value(
            &c,
            "sum(gen_ai_client_operation_duration_seconds_count)",
            |v| v == 20.0,
        )
        .await;
    assert_eq!(first, 20.0, "Prometheus scraped the first round");
    tokio::time::sleep(Duration::from_secs(2)).await;
    send(&c, calls(21, 20, &mut load)).await;
    // One malformed request, for the refusal panels.
    let bad = c
        .post_otlp(
            "/v1/traces",
            &[("content-type", "application/json")],
            b"{".to_vec(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let calls_total = prometheus
        .value(
            &c,
            "sum(gen_ai_client_operation_duration_seconds_count)",
            |v| v == load.calls as f64,
        )
        .await;
    assert_eq!(calls_total, 40.0);
    for (expr, want) in [
        (
            r#"sum(gen_ai_client_token_usage_sum{gen_ai_token_type="input"})"#,
            load.input as f64,
        ),
        (
            r#"sum(gen_ai_client_token_usage_sum{gen_ai_token_type="output"})"#,
            load.output as f64,
        ),
        (
            r#"sum(gen_ai_client_token_usage_count{gen_ai_token_type="input"})"#,
            load.calls as f64,
        ),
        (
            r#"sum(gen_ai_client_operation_duration_seconds_count{error_type!=""})"#,
            load.errors as f64,
        ),
        (
            "sum(llmscope_gen_ai_usage_cache_read_input_tokens_total)",
            load.cache_read as f64,
        ),
        (
            "sum(llmscope_gen_ai_usage_reasoning_output_tokens_total)",
            load.reasoning as f64,
        ),
        (
            r#"sum(gen_ai_client_operation_duration_seconds_count{service_name="chat-api",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini",gen_ai_response_model="gpt-4o-mini-2024-07-18",gen_ai_operation_name="chat"})"#,
            20.0,
        ),
    ] {
        let got = prometheus.value(&c, expr, |v| v == want).await;
        assert_eq!(got, want, "{expr}");
    }
    // Cost: what the cost processor priced, as the query API totals it.
    let summary = c
        .eventually("/api/v1/analytics/summary?group_by=model", |s| {
            s["groups"].as_array().is_some_and(|g| {
                g.iter()
                    .map(|g| g["requests"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    == load.calls
            })
        })
        .await;
    let api_cost: f64 = summary["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["cost_usd"].as_f64().unwrap_or(0.0))
        .sum();
    assert!(api_cost > 0.0, "{summary}");
    let cost = prometheus
        .value(&c, "sum(llmscope_gen_ai_cost_usd_total)", |v| {
            (v - api_cost).abs() < 1e-9
        })
        .await;
    assert!((cost - api_cost).abs() < 1e-9, "{cost} against {api_cost}");

    // Every PromQL panel evaluates; those the load feeds have data (once the refusal was
    // scraped twice, so it has a rate).
    let refusals = prometheus
        .value(
            &c,
            "sum(count_over_time(llmscope_receiver_refused_requests_total[30s]))",
            |v| v >= 2.0,
        )
        .await;
    assert!(refusals >= 2.0, "{refusals}");
    let all = dashboards();
    let mut evaluated = 0;
    for file in ["llm-usage-prometheus.json", "collector-health.json"] {
        for (title, _, targets) in panels(&all[file]) {
            let mut any = false;
            for t in &targets {
                let expr = t["expr"].as_str().expect("expr");
                let expr = expr
                    .replace("$__rate_interval", "30s")
                    .replace("$__range", "5m")
                    .replace("$service", ".*")
                    .replace("$model", ".*")
                    .replace("$provider", ".*")
                    .replace("$instance", ".*");
                assert!(!expr.contains('$'), "{file}: {title}: {expr}");
                let result = prometheus.query(&c, &expr).await;
                any |= !result.is_empty();
                evaluated += 1;
            }
            let fed = !matches!(
                title.as_str(),
                "Anomalies by kind"
                    | "Refused items/s"
                    | "Rate-limit refusals/s"
                    | "Export retries/s"
                    | "Dead-lettered and dropped items/s"
                    | "GenAI metric overflow/s"
                    | "Oldest unexported batch"
            );
            assert!(!fed || any, "{file}: {title} has no data");
        }
    }
    assert!(evaluated >= 25, "{evaluated}");

    // And /metrics passes promtool's checks with the GenAI families on it.
    let page = String::from_utf8(c.get("/metrics").await.body).expect("utf-8");
    assert!(page.contains("# TYPE gen_ai_client_token_usage histogram"));
    drop(prometheus);
    assert!(c.stop().await);
}

/// The GenAI metrics sent as OTLP through the `otlp` exporter: collector A counts what it
/// stores and sends the metrics every second into a receiver-less metrics pipeline exporting to
/// collector B, which stores them as metric points with the conventions' names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_genai_metrics_reach_another_collector_as_otlp_metrics() {
    let b = Collector::start().await;
    let a_dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{endpoint: 127.0.0.1:0}}\n      http: {{endpoint: 127.0.0.1:0}}\n\
         processors:\n  normalize:\n  cost:\n\
         exporters:\n  sqlite: {{path: {db}}}\n  otlp: {{endpoint: 'http://{b_grpc}'}}\n\
         extensions:\n  api: {{endpoint: 127.0.0.1:0, store: sqlite}}\n\
         service:\n  extensions: [api]\n\
         \x20 telemetry: {{metrics: {{gen_ai: {{export: {{pipelines: [metrics/gen_ai], interval: 1s}}}}}}}}\n\
         \x20 pipelines:\n\
         \x20   traces: {{receivers: [otlp], processors: [normalize, cost], exporters: [sqlite]}}\n\
         \x20   metrics/gen_ai: {{exporters: [otlp]}}\n",
        db = a_dir.path().join("a.db").display(),
        b_grpc = b.grpc,
    );
    let config = llmscope::config::Config::parse("a.yaml", &text, &|_| None).expect("config");
    let a = Collector::start_with(config, a_dir).await;
    let mut load = Load::default();
    send(&a, calls(1, 10, &mut load)).await;

    let db = b.db.clone();
    let read = move || -> Vec<(String, String, String, f64, Option<i64>, String)> {
        let conn = rusqlite::Connection::open(&db).expect("B's database");
        let mut stmt = conn
            .prepare(
                "SELECT name, unit, kind, value, count, attributes FROM metric_points
                 WHERE time_ns = (SELECT max(time_ns) FROM metric_points WHERE name = 'gen_ai.client.token.usage')
                 ORDER BY name, attributes",
            )
            .expect("query");
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows")
    };
    let mut points = Vec::new();
    for _ in 0..100 {
        points = read();
        let input: f64 = points
            .iter()
            .filter(|p| p.0 == "gen_ai.client.token.usage" && p.5.contains("\"input\""))
            .map(|p| p.3)
            .sum();
        if input == load.input as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let find = |name: &str, needle: &str| {
        points
            .iter()
            .filter(|p| p.0 == name && p.5.contains(needle))
            .collect::<Vec<_>>()
    };
    let input = find(
        "gen_ai.client.token.usage",
        "\"gen_ai.token.type\":\"input\"",
    );
    assert_eq!(input.len(), 2, "one series per service: {points:#?}");
    assert_eq!(
        input.iter().map(|p| p.3).sum::<f64>(),
        load.input as f64,
        "{points:#?}"
    );
    assert!(input.iter().all(|p| p.1 == "{token}" && p.2 == "histogram"));
    assert!(
        input[0]
            .5
            .contains("\"gen_ai.request.model\":\"gpt-4o-mini\"")
    );
    let durations = find("gen_ai.client.operation.duration", "");
    assert_eq!(
        durations.iter().filter_map(|p| p.4).sum::<i64>(),
        load.calls as i64
    );
    assert!(durations.iter().all(|p| p.1 == "s"));
    let cost = find("llmscope.gen_ai.cost_usd", "");
    assert!(
        !cost.is_empty() && cost.iter().all(|p| p.2 == "sum" && p.3 > 0.0),
        "{points:#?}"
    );
    let reasoning: f64 = find("llmscope.gen_ai.usage.reasoning.output_tokens", "")
        .iter()
        .map(|p| p.3)
        .sum();
    assert_eq!(reasoning, load.reasoning as f64);
    assert!(a.stop().await);
    assert!(b.stop().await);
}
