//! The sidecar topology: an app's real OpenTelemetry SDK sends to LLMScope A (`sidecar.yaml`:
//! normalize, redact, disk queue, `otlp` exporter), which forwards to LLMScope B
//! (`gateway.yaml`: API keys, SQLite, the query API). And how A's `otlp` exporter takes a
//! gateway's refusals, against fake OTLP endpoints on loopback.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmscope::config::Config;
use llmscope_core::otlp::trace::v1::Span;
use llmscope_core::test_util::{kv, traces_request};
use llmscope_exporters::sqlite::{SqliteConfig, SqliteStore};
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanExporter as _};
use prost::Message as _;
use serde_json::Value as J;

use crate::harness::Collector;

fn example(name: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../otel-config")
        .join(name);
    std::fs::read_to_string(file).expect("example config")
}

/// B: `gateway.yaml` in `dir`, its gRPC receiver on `grpc` (`127.0.0.1:0` for any port).
fn gateway_config(dir: &tempfile::TempDir, grpc: &str) -> Config {
    let db = dir.path().join("gateway.db").display().to_string();
    let queue = dir.path().join("gateway-queue").display().to_string();
    let grpc = grpc.to_owned();
    Config::parse("gateway.yaml", &example("gateway.yaml"), &|var| match var {
        "LLMSCOPE_SQLITE_PATH" => Some(db.clone()),
        "LLMSCOPE_QUEUE_DIR" => Some(queue.clone()),
        "LLMSCOPE_OTLP_GRPC_ENDPOINT" => Some(grpc.clone()),
        "LLMSCOPE_ADMIN_TOKEN" => Some("an-admin-token-for-tests".into()),
        v if v.ends_with("_ENDPOINT") => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .expect("gateway.yaml")
}

/// A: `sidecar.yaml` in `dir`, forwarding to `gateway` with `key`.
fn sidecar_config(dir: &tempfile::TempDir, gateway: &str, key: &str) -> Config {
    let queue = dir.path().join("sidecar-queue").display().to_string();
    let (gateway, key) = (gateway.to_owned(), key.to_owned());
    Config::parse("sidecar.yaml", &example("sidecar.yaml"), &|var| match var {
        "LLMSCOPE_GATEWAY_ENDPOINT" => Some(gateway.clone()),
        "LLMSCOPE_API_KEY" => Some(key.clone()),
        "LLMSCOPE_QUEUE_DIR" => Some(queue.clone()),
        v if v.ends_with("_ENDPOINT") => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .expect("sidecar.yaml")
}

/// A key of project `team-a` in B's store, made before B starts.
async fn gateway_key(dir: &tempfile::TempDir) -> String {
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("gateway.db"),
        ..SqliteConfig::default()
    })
    .expect("gateway store");
    llmscope::auth::create_key(&store, "team-a", "sidecar")
        .await
        .expect("key")
        .key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_from_an_sdk_reach_the_gateway_through_the_sidecar_as_sent_redacted_once() {
    let b_dir = tempfile::tempdir().expect("tempdir");
    let key = gateway_key(&b_dir).await;
    let mut b = Collector::start_with(gateway_config(&b_dir, "127.0.0.1:0"), b_dir).await;
    b.api_headers = vec![("authorization".into(), format!("Bearer {key}"))];
    let a_dir = tempfile::tempdir().expect("tempdir");
    let a = Collector::start_with(
        sidecar_config(&a_dir, &format!("http://{}", b.grpc), &key),
        a_dir,
    )
    .await;

    // The app: the real SDK records a run, the real OTLP exporter sends it to A over gRPC.
    let resource = Resource::builder()
        .with_service_name("checkout-agent")
        .with_attributes([KeyValue::new("deployment.environment", "prod")])
        .build();
    let recorded = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(recorded.clone())
        .with_resource(resource.clone())
        .build();
    let tracer = provider.tracer("app");
    let root = tracer
        .span_builder("agent-run")
        .with_attributes([KeyValue::new("user.id", "user-7")])
        .start(&tracer);
    let cx = Context::current_with_span(root);
    let prompt = r#"[{"role":"user","parts":[{"type":"text","content":"Mail jane.doe@example.com about order 1234"}]}]"#;
    let mut chat = tracer
        .span_builder("chat gpt-4o-mini")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.request.model", "gpt-4o-mini"),
            KeyValue::new("gen_ai.response.id", "chatcmpl-fwd-1"),
            KeyValue::new("gen_ai.usage.input_tokens", 42),
            KeyValue::new("gen_ai.usage.output_tokens", 7),
            KeyValue::new("gen_ai.input.messages", prompt),
            KeyValue::new("app.cart.items", 3),
        ])
        .start_with_context(&tracer, &cx);
    chat.add_event("retry", vec![KeyValue::new("attempt", 2)]);
    let trace_id = chat.span_context().trace_id().to_string();
    chat.end();
    cx.span().end();
    let spans = recorded.get_finished_spans().expect("spans");
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", a.grpc))
        .build()
        .expect("exporter");
    exporter.set_resource(&resource);
    exporter.export(spans).await.expect("sent to the sidecar");

    let trace = b
        .eventually(&format!("/api/v1/traces/{trace_id}"), |t| {
            t["spans"].as_array().is_some_and(|s| s.len() == 2)
        })
        .await;
    let chat = trace["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "chat gpt-4o-mini"))
        .expect("chat span");
    let attributes = &chat["attributes"];
    assert_eq!(attributes["app.cart.items"], 3);
    assert_eq!(attributes["gen_ai.request.model"], "gpt-4o-mini");
    assert_eq!(attributes["gen_ai.response.id"], "chatcmpl-fwd-1");
    assert_eq!(chat["events"][0]["name"], "retry");
    assert_eq!(chat["events"][0]["attributes"]["attempt"], 2);
    assert_eq!(chat["scope"], "app");
    assert_eq!(chat["resource"]["deployment.environment"], "prod");
    assert_eq!(chat["resource"]["service.name"], "checkout-agent");
    assert_eq!(chat["service"], "checkout-agent");
    let root = trace["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "agent-run"))
        .expect("root span");
    assert_eq!(root["attributes"]["user.id"], "user-7");
    assert_eq!(chat["parent_span_id"], root["span_id"]);

    // Redacted by A, once: B's redaction finds nothing more to do.
    assert_eq!(
        chat["gen_ai"]["input_messages"][0]["parts"][0]["content"],
        "Mail [REDACTED:EMAIL] about order 1234",
        "{chat:#}"
    );
    assert_eq!(
        attributes["llmscope.pii.types"],
        serde_json::json!(["email"])
    );

    // Logs and metrics are forwarded too.
    for (path, body) in [
        ("/v1/logs", llmscope_core::test_util::fixtures::OTLP_LOGS),
        (
            "/v1/metrics",
            llmscope_core::test_util::fixtures::OTLP_METRICS,
        ),
    ] {
        let reply = a
            .post_otlp(path, &[("content-type", "application/json")], body.into())
            .await;
        assert_eq!(reply.status, 200, "{path}");
    }
    let accepted = |c: &Collector, transport, signal| {
        c.telemetry().value(
            "llmscope_receiver_accepted_items_total",
            &[
                ("receiver", "otlp"),
                ("transport", transport),
                ("signal", signal),
            ],
        )
    };
    for signal in ["logs", "metrics"] {
        let sent = accepted(&a, "http", signal);
        assert!(sent > 0, "{signal}");
        until(&format!("the gateway has the {signal}"), || {
            accepted(&b, "grpc", signal) == sent
        })
        .await;
    }

    // Tokens and cost counted once, at the gateway.
    let summary = b
        .eventually("/api/v1/analytics/summary?group_by=model", |s| {
            s["groups"].as_array().is_some_and(|g| !g.is_empty())
        })
        .await;
    let group = &summary["groups"][0];
    assert_eq!(group["requests"], 1, "{summary:#}");
    assert_eq!(group["input_tokens"], 42, "{summary:#}");
    assert_eq!(group["output_tokens"], 7, "{summary:#}");
    assert!(
        group["cost_usd"].as_f64().is_some_and(|c| c > 0.0),
        "{summary:#}"
    );
    let forwarded = 2 + accepted(&a, "http", "logs") + accepted(&a, "http", "metrics");
    until("the sidecar counts everything it forwarded", || {
        a.telemetry().value(
            "llmscope_exporter_sent_items_total",
            &[("exporter", "otlp")],
        ) == forwarded
    })
    .await;
    assert!(a.stop().await);
    assert!(b.stop().await);
}

/// `n` spans with ids unique to `request`, under one resource.
fn spans(request: u32, n: u32) -> Vec<Span> {
    // All-zero ids are invalid (and refused): number from 1.
    let request = request + 1;
    (0..n)
        .map(|i| {
            let mut trace_id = [0u8; 16];
            trace_id[..4].copy_from_slice(&request.to_be_bytes());
            let mut span_id = [0u8; 8];
            span_id[..4].copy_from_slice(&request.to_be_bytes());
            span_id[4..].copy_from_slice(&i.to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                name: format!("step {i}"),
                start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
                end_time_unix_nano: 1_700_000_000_001_000_000 + u64::from(i),
                attributes: vec![kv("step", i64::from(i))],
                ..Default::default()
            }
        })
        .collect()
}

fn spans_in(db: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(db).expect("database");
    conn.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT span_id) FROM spans",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_down_for_20_seconds_receives_every_span_exactly_once() {
    const REQUESTS: u32 = 100;
    const PER_REQUEST: u32 = 500;
    let b_dir = tempfile::tempdir().expect("tempdir");
    let b_db = b_dir.path().join("gateway.db");
    let key = gateway_key(&b_dir).await;
    let b = Collector::start_with(gateway_config(&b_dir, "127.0.0.1:0"), b_dir).await;
    let grpc = b.grpc;
    let a_dir = tempfile::tempdir().expect("tempdir");
    let a = Collector::start_with(
        sidecar_config(&a_dir, &format!("http://{grpc}"), &key),
        a_dir,
    )
    .await;

    // The gateway goes away (keeping its files); the sidecar keeps accepting.
    let b_dir = b.into_dir().await;
    let down = Instant::now();
    for request in 0..REQUESTS {
        let body = traces_request("batch-job", spans(request, PER_REQUEST)).encode_to_vec();
        let reply = a
            .post_otlp(
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                body,
            )
            .await;
        assert_eq!(
            reply.status, 200,
            "the sidecar accepts while the gateway is down"
        );
    }
    let accepted = a.telemetry().value(
        "llmscope_receiver_accepted_items_total",
        &[
            ("receiver", "otlp"),
            ("transport", "http"),
            ("signal", "traces"),
        ],
    );
    assert_eq!(accepted, u64::from(REQUESTS * PER_REQUEST));
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(down.elapsed())).await;
    assert!(
        a.telemetry()
            .value("llmscope_exporter_retries_total", &[("exporter", "otlp")])
            > 0,
        "the sidecar kept trying"
    );

    // Back on the same address: the backlog drains, each span once.
    let b = Collector::start_with(gateway_config(&b_dir, &grpc.to_string()), b_dir).await;
    let total = i64::from(REQUESTS * PER_REQUEST);
    for _ in 0..600 {
        if spans_in(&b_db).0 >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.stop().await, "the sidecar's queue drained");
    // Exactly once, not merely deduplicated by the store: the gateway received each span once.
    let received = b.telemetry().value(
        "llmscope_receiver_accepted_items_total",
        &[
            ("receiver", "otlp"),
            ("transport", "grpc"),
            ("signal", "traces"),
        ],
    );
    assert_eq!(received, u64::try_from(total).expect("count"));
    let _b_dir = b.into_dir().await;
    assert_eq!(spans_in(&b_db), (total, total));
}

/// A scripted HTTP reply: status, headers, body.
type Reply = (u16, Vec<(&'static str, &'static str)>, Vec<u8>);

/// A fake OTLP/HTTP endpoint: answers each request with the next scripted reply (then 200),
/// and notes when each request came and how many spans it held.
#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<Vec<Reply>>>,
    seen: Arc<Mutex<Vec<(Instant, usize)>>>,
}

async fn fake_http(script: Script) -> std::net::SocketAddr {
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    let handler = move |body: Bytes| {
        let script = script.clone();
        async move {
            let body = crate::harness::gunzip(&body);
            let request =
                llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest::decode(
                    &body[..],
                )
                .expect("an OTLP request");
            let spans = request
                .resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum();
            script
                .seen
                .lock()
                .expect("lock")
                .push((Instant::now(), spans));
            let next = {
                let mut replies = script.replies.lock().expect("lock");
                (!replies.is_empty()).then(|| replies.remove(0))
            };
            let (status, headers, body) = next.unwrap_or((200, vec![], vec![]));
            let mut response =
                (StatusCode::from_u16(status).expect("status"), body).into_response();
            for (name, value) in headers {
                response
                    .headers_mut()
                    .insert(name, value.parse().expect("value"));
            }
            response
        }
    };
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A collector whose traces go through the disk queue to an `otlp` exporter at `endpoint`.
fn forwarding_to(dir: &tempfile::TempDir, endpoint: &str, protocol: &str) -> Config {
    forwarding_with(dir, endpoint, protocol, "")
}

/// [`forwarding_to`] with `more` settings of the exporter (YAML lines indented 4).
fn forwarding_with(dir: &tempfile::TempDir, endpoint: &str, protocol: &str, more: &str) -> Config {
    let queue = dir.path().join("queue").display().to_string();
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\n\
         exporters:\n  otlp:\n    endpoint: {endpoint}\n    protocol: {protocol}\n    \
         retry_on_failure: {{initial_interval: 10ms, max_interval: 20ms}}\n{more}\
         service:\n  queue: {{kind: disk, dir: {queue}}}\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n"
    );
    Config::parse("forward.yaml", &text, &|_| None).expect("config")
}

async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

fn dead_letters(collector: &Collector) -> Vec<J> {
    let file = collector.dir().join("queue/traces/dead-letter-otlp.jsonl");
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_400_is_dead_lettered_and_a_429_waits_for_retry_after() {
    use llmscope_core::otlp::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "one span too old".into(),
        }),
    }
    .encode_to_vec();
    let script = Script::default();
    *script.replies.lock().expect("lock") = vec![
        (400, vec![], b"bad batch".to_vec()),
        (429, vec![("retry-after", "2")], vec![]),
        (
            200,
            vec![("content-type", "application/x-protobuf")],
            partial,
        ),
    ];
    let endpoint = format!("http://{}", fake_http(script.clone()).await);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = Collector::start_with(forwarding_to(&dir, &endpoint, "http/protobuf"), dir).await;
    let post = |request: u32, n: u32| {
        let body = traces_request("svc", spans(request, n)).encode_to_vec();
        a.post_otlp(
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            body,
        )
    };

    assert_eq!(post(1, 2).await.status, 200);
    until("the refused batch is dead-lettered", || {
        dead_letters(&a).len() == 1
    })
    .await;
    let letter = &dead_letters(&a)[0];
    assert_eq!(letter["items"], 2);
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("400") && r.contains("bad batch")),
        "{letter}"
    );

    assert_eq!(post(2, 3).await.status, 200);
    let sent = || {
        a.telemetry().value(
            "llmscope_exporter_sent_items_total",
            &[("exporter", "otlp")],
        )
    };
    until("the second batch is sent", || sent() == 3).await;
    let seen = script.seen.lock().expect("lock").clone();
    assert_eq!(seen.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [2, 3, 3]);
    let waited = seen[2].0 - seen[1].0;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert_eq!(
        a.telemetry().value(
            "llmscope_exporter_rejected_items_total",
            &[("exporter", "otlp")]
        ),
        1,
        "the partial success is counted"
    );
    assert_eq!(
        a.telemetry().value(
            "llmscope_exporter_dead_letter_items_total",
            &[("exporter", "otlp")]
        ),
        2
    );
    assert!(a.stop().await);
}

/// A fake OTLP/gRPC trace service answering with the scripted statuses, then OK.
#[derive(Clone, Default)]
struct GrpcScript {
    statuses: Arc<Mutex<Vec<tonic::Status>>>,
    seen: Arc<Mutex<Vec<Instant>>>,
}

#[tonic::async_trait]
impl llmscope_core::otlp::collector::trace::v1::trace_service_server::TraceService for GrpcScript {
    async fn export(
        &self,
        _request: tonic::Request<
            llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<llmscope_core::otlp::collector::trace::v1::ExportTraceServiceResponse>,
        tonic::Status,
    > {
        self.seen.lock().expect("lock").push(Instant::now());
        let next = {
            let mut statuses = self.statuses.lock().expect("lock");
            (!statuses.is_empty()).then(|| statuses.remove(0))
        };
        match next {
            Some(status) => Err(status),
            None => Ok(tonic::Response::new(Default::default())),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_invalid_argument_is_dead_lettered_and_resource_exhausted_waits_for_retry_info() {
    use tonic_types::{ErrorDetails, StatusExt as _};
    let script = GrpcScript::default();
    *script.statuses.lock().expect("lock") = vec![
        tonic::Status::invalid_argument("bad batch"),
        tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_secs(2))),
        ),
    ];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service =
        llmscope_core::otlp::collector::trace::v1::trace_service_server::TraceServiceServer::new(
            script.clone(),
        )
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream_of(listener)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let a =
        Collector::start_with(forwarding_to(&dir, &format!("http://{addr}"), "grpc"), dir).await;
    let post = |request: u32, n: u32| {
        let body = traces_request("svc", spans(request, n)).encode_to_vec();
        a.post_otlp(
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            body,
        )
    };
    assert_eq!(post(1, 2).await.status, 200);
    until("the refused batch is dead-lettered", || {
        dead_letters(&a).len() == 1
    })
    .await;
    assert!(
        dead_letters(&a)[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("InvalidArgument") && r.contains("bad batch")),
        "{:?}",
        dead_letters(&a)
    );
    assert_eq!(post(2, 3).await.status, 200);
    let sent = || {
        a.telemetry().value(
            "llmscope_exporter_sent_items_total",
            &[("exporter", "otlp")],
        )
    };
    until("the second batch is sent", || sent() == 3).await;
    let seen = script.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3);
    let waited = seen[2] - seen[1];
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert!(a.stop().await);
}

fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nop_and_debug_exporters_take_what_a_started_collector_receives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\n      http:\n        endpoint: 127.0.0.1:0\n\
                processors:\n  redact:\n\
                exporters:\n  nop:\n  debug:\n    verbosity: normal\n\
                service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [redact]\n      exporters: [nop, debug]\n";
    let config = Config::parse("write-only.yaml", text, &|_| None).expect("config");
    let c = Collector::start_with(config, dir).await;
    let body = traces_request("svc", spans(7, 5)).encode_to_vec();
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            body,
        )
        .await;
    assert_eq!(reply.status, 200);
    let sent = |id| {
        c.telemetry()
            .value("llmscope_exporter_sent_items_total", &[("exporter", id)])
    };
    until("both exporters took the spans", || {
        sent("nop") == 5 && sent("debug") == 5
    })
    .await;
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_endpoint_is_trusted_through_ca_file_and_only_then() {
    let b_dir = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let (cert, key) = (b_dir.path().join("cert.pem"), b_dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    let tls = format!(
        "\n        tls: {{cert_file: {}, key_file: {}}}",
        cert.display(),
        key.display()
    );
    let config = crate::harness::default_config_with(&b_dir, |text| {
        text.replace(
            "endpoint: ${env:LLMSCOPE_OTLP_GRPC_ENDPOINT:-127.0.0.1:4317}",
            &format!("endpoint: ${{env:LLMSCOPE_OTLP_GRPC_ENDPOINT:-127.0.0.1:4317}}{tls}"),
        )
        .replace(
            "endpoint: ${env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}",
            &format!("endpoint: ${{env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}}{tls}"),
        )
    });
    let b = Collector::start_with(config, b_dir).await;
    let ca_file = format!("    tls: {{ca_file: {}}}\n", cert.display());
    let targets = [
        ("grpc", format!("https://localhost:{}", b.grpc.port())),
        (
            "http/protobuf",
            format!("https://localhost:{}", b.http.port()),
        ),
    ];
    for (i, (protocol, endpoint)) in targets.iter().enumerate() {
        let transport = if *protocol == "grpc" { "grpc" } else { "http" };
        let received = || {
            b.telemetry().value(
                "llmscope_receiver_accepted_items_total",
                &[
                    ("receiver", "otlp"),
                    ("transport", transport),
                    ("signal", "traces"),
                ],
            )
        };
        // Not trusted without the CA: the export fails (and is retried), nothing arrives.
        let dir = tempfile::tempdir().expect("tempdir");
        let untrusting = Collector::start_with(forwarding_to(&dir, endpoint, protocol), dir).await;
        let body = traces_request("svc", spans(100 + i as u32, 2)).encode_to_vec();
        let reply = untrusting
            .post_otlp(
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                body.clone(),
            )
            .await;
        assert_eq!(reply.status, 200);
        until("the untrusted export is retried", || {
            untrusting
                .telemetry()
                .value("llmscope_exporter_retries_total", &[("exporter", "otlp")])
                > 0
        })
        .await;
        assert_eq!(
            received(),
            0,
            "{protocol}: nothing passed an unverified server"
        );
        assert!(
            !untrusting.stop_within(Duration::from_millis(200)).await,
            "what is not exported stays queued"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let trusting =
            Collector::start_with(forwarding_with(&dir, endpoint, protocol, &ca_file), dir).await;
        let reply = trusting
            .post_otlp(
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                body,
            )
            .await;
        assert_eq!(reply.status, 200);
        until(&format!("{protocol} over TLS arrives"), || received() == 2).await;
        assert!(trusting.stop().await);
    }
    assert!(b.stop().await);
}
