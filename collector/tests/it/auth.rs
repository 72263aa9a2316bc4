//! API keys end to end: every way a key is presented, revocation, project isolation, the admin
//! token, hashes only at rest, and the loopback-only rule for running without keys.

use std::time::Duration;

use hyper::{Method, StatusCode};
use llmscope::config::Config;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use llmscope_core::test_util::fixtures;
use serde_json::{Value as J, json};

use crate::harness::{Collector, default_config_with};

const ADMIN: &str = "admin-token-0123456789";

fn config(dir: &tempfile::TempDir, extra: &str) -> Config {
    default_config_with(dir, |text| {
        text.replace("extensions:\n  api:", &format!("extensions:\n  auth:\n    admin_token: {ADMIN}\n    cache_ttl: 100ms\n{extra}  api:"))
            .replace("  extensions: [api, alerts]", "  extensions: [auth, api, alerts]")
    })
}

async fn start() -> Collector {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(&dir, "");
    let mut c = Collector::start_with(config, dir).await;
    c.db = c.dir().join("data/llmscope.db");
    c
}

async fn api(
    c: &Collector,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<J>,
) -> (StatusCode, J) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
    let reply = c
        .request(method, format!("http://{}{path}", c.api), &headers, body)
        .await;
    let json = serde_json::from_slice(&reply.body).unwrap_or(J::Null);
    (reply.status, json)
}

async fn create_key(c: &Collector, project: &str) -> (String, String) {
    let (status, body) = api(
        c,
        Method::POST,
        "/api/v1/keys",
        Some(ADMIN),
        Some(json!({"project": project, "name": "ci"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["key"].as_str().expect("key").to_owned(),
        body["id"].as_str().expect("id").to_owned(),
    )
}

fn fixture_with_trace(byte: u8) -> String {
    let mut request: ExportTraceServiceRequest =
        serde_json::from_str(fixtures::OPENLLMETRY_OPENAI_CHAT).expect("fixture");
    for span in request
        .resource_spans
        .iter_mut()
        .flat_map(|r| r.scope_spans.iter_mut())
        .flat_map(|s| s.spans.iter_mut())
    {
        span.trace_id = vec![byte; 16];
    }
    serde_json::to_string(&request).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_scoped_to_their_project_and_revocable() {
    let c = start().await;
    let json_type = ("content-type", "application/json");

    // The key API is the admin's.
    assert_eq!(
        api(&c, Method::GET, "/api/v1/keys", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (key_a, id_a) = create_key(&c, "team-a").await;
    let (key_b, _) = create_key(&c, "team-b").await;
    assert!(key_a.starts_with("lls_") && key_a != key_b);
    assert_eq!(
        api(&c, Method::GET, "/api/v1/keys", Some(&key_a), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // No key, a wrong key: refused, counted, nothing stored.
    let body = fixture_with_trace(1).into_bytes();
    assert_eq!(
        c.post_otlp("/v1/traces", &[json_type], body.clone())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let wrong = c
        .post_otlp(
            "/v1/traces",
            &[json_type, ("authorization", "Bearer lls_nope")],
            body.clone(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid"))
    );

    // Every way of presenting a key: Bearer, x-api-key, Basic on the Langfuse path, gRPC metadata.
    let bearer = format!("Bearer {key_a}");
    assert_eq!(
        c.post_otlp("/v1/traces", &[json_type, ("authorization", &bearer)], body)
            .await
            .status,
        StatusCode::OK
    );
    let r = c
        .post_otlp(
            "/v1/traces",
            &[json_type, ("x-api-key", &key_b)],
            fixture_with_trace(2).into_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let basic = format!("Basic {}", base64(&format!("pk-lf-public:{key_a}")));
    let r = c
        .post_otlp(
            "/api/public/otel/v1/traces",
            &[json_type, ("authorization", &basic)],
            fixture_with_trace(3).into_bytes(),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let mut grpc = TraceServiceClient::connect(format!("http://{}", c.grpc))
        .await
        .expect("connect");
    let request = || {
        serde_json::from_str::<ExportTraceServiceRequest>(&fixture_with_trace(4)).expect("request")
    };
    let refused = grpc.export(request()).await.expect_err("no key");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut with_key = tonic::Request::new(request());
    with_key.metadata_mut().insert(
        "authorization",
        format!("Bearer {key_b}").parse().expect("metadata"),
    );
    grpc.export(with_key).await.expect("gRPC with a key");

    // Each key sees its own project only.
    let traces = |key: String| {
        let c = &c;
        async move {
            let mut ids = Vec::new();
            for _ in 0..100 {
                let (status, body) = api(c, Method::GET, "/api/v1/traces", Some(&key), None).await;
                assert_eq!(status, StatusCode::OK);
                ids = body["traces"]
                    .as_array()
                    .expect("traces")
                    .iter()
                    .map(|t| t["trace_id"].as_str().unwrap_or("").to_owned())
                    .collect::<Vec<_>>();
                if ids.len() == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ids.sort();
            ids
        }
    };
    assert_eq!(
        traces(key_a.clone()).await,
        vec!["01".repeat(16), "03".repeat(16)]
    );
    assert_eq!(
        traces(key_b.clone()).await,
        vec!["02".repeat(16), "04".repeat(16)]
    );
    let (status, _) = api(
        &c,
        Method::GET,
        &format!("/api/v1/traces/{}", "02".repeat(16)),
        Some(&key_a),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another project's trace does not exist for this key"
    );
    assert_eq!(
        api(
            &c,
            Method::GET,
            "/api/v1/traces?project=team-b",
            Some(&key_a),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (_, summary) = api(
        &c,
        Method::GET,
        "/api/v1/analytics/summary",
        Some(&key_a),
        None,
    )
    .await;
    // Both of team A's traces carry the fixture's two calls (same response ids): counted once.
    assert_eq!(summary["groups"][0]["requests"], 2);
    assert_eq!(summary["groups"].as_array().map(Vec::len), Some(1));
    let (status, admin_view) = api(
        &c,
        Method::GET,
        "/api/v1/traces?project=team-b",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(admin_view["traces"].as_array().map(Vec::len), Some(2));

    // Keys at rest are hashes only.
    let file = std::fs::read(&c.db).expect("database file");
    let wal = std::fs::read(c.db.with_extension("db-wal")).unwrap_or_default();
    for key in [&key_a, &key_b] {
        let needle = key.as_bytes();
        assert!(
            !file.windows(needle.len()).any(|w| w == needle)
                && !wal.windows(needle.len()).any(|w| w == needle)
        );
    }
    let conn = rusqlite::Connection::open(&c.db).expect("db");
    let stored: Vec<u8> = conn
        .query_row(
            "SELECT key_sha256 FROM api_keys WHERE id = ?1",
            [&id_a],
            |r| r.get(0),
        )
        .expect("row");
    assert_eq!(stored, llmscope::auth::sha256(&key_a).to_vec());

    // Revoked: refused once the cache period (100 ms here) has passed.
    let (status, _) = api(
        &c,
        Method::DELETE,
        &format!("/api/v1/keys/{id_a}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c
        .post_otlp(
            "/v1/traces",
            &[json_type, ("authorization", &bearer)],
            fixture_with_trace(5).into_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, list) = api(
        &c,
        Method::GET,
        "/api/v1/keys?project=team-a",
        Some(ADMIN),
        None,
    )
    .await;
    assert!(
        list["keys"][0]["revoked_at"].is_string() && list["keys"][0]["last_used_at"].is_string(),
        "{list}"
    );
    let refused = c.telemetry().value(
        "llmscope_receiver_refused_requests_total",
        &[
            ("receiver", "otlp"),
            ("transport", "http"),
            ("reason", "unauthenticated"),
        ],
    );
    assert_eq!(refused, 3);
}

const LISTED: &str = "node-agent-key-0123456789abcdef0123";

#[tokio::test]
async fn keys_listed_in_the_config_work_without_a_key_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listed = format!("    keys:\n      - {{name: node, project: team-n, key: {LISTED}}}\n");
    let mut c = Collector::start_with(config(&dir, &listed), dir).await;
    c.db = c.dir().join("data/llmscope.db");
    let json_type = ("content-type", "application/json");

    // The listed key writes under its project; anything else is refused.
    let bearer = format!("Bearer {LISTED}");
    let ok = c
        .post_otlp(
            "/v1/traces",
            &[json_type, ("authorization", &bearer)],
            fixture_with_trace(7).into_bytes(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let other = format!("Bearer {}", LISTED.replace('0', "1"));
    for headers in [vec![json_type], vec![json_type, ("authorization", &other)]] {
        let refused = c
            .post_otlp("/v1/traces", &headers, fixture_with_trace(8).into_bytes())
            .await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }

    // It reads its own project; the admin sees the data under team-n.
    let mut ids = Vec::new();
    for _ in 0..100 {
        let (status, body) = api(&c, Method::GET, "/api/v1/traces", Some(LISTED), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids = body["traces"].as_array().expect("traces").clone();
        if !ids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0]["trace_id"], "07".repeat(16));
    let (_, elsewhere) = api(
        &c,
        Method::GET,
        "/api/v1/traces?project=default",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(elsewhere["traces"], json!([]), "stored under team-n only");

    // No store keeps keys here: the key API says so rather than minting keys nobody checks.
    let (status, body) = api(&c, Method::GET, "/api/v1/keys", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|m| m.contains("listed in its config")),
        "{body}"
    );
    let (status, _) = api(
        &c,
        Method::POST,
        "/api/v1/keys",
        Some(ADMIN),
        Some(json!({"project": "p", "name": "n"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn listed_keys_are_checked_at_load_and_never_echoed() {
    let parse = |extra: &str| {
        let text = llmscope::config::DEFAULT_CONFIG
            .replace(
                "extensions:\n  api:",
                &format!("extensions:\n  auth:\n{extra}  api:"),
            )
            .replace(
                "  extensions: [api, alerts]",
                "  extensions: [auth, api, alerts]",
            );
        Config::parse("listed.yaml", &text, &|var| match var {
            "NODE_KEY" => Some(LISTED.to_owned()),
            _ => None,
        })
    };
    let short = "short-secret-key-123";
    for (extra, expected) in [
        (
            format!("    keys: [{{name: a, key: {short}}}]\n"),
            "shorter than 32",
        ),
        (
            "    keys: [{name: a, key: '${env:UNSET_KEY:-}'}]\n".to_owned(),
            "is its environment variable set",
        ),
        (
            "    keys: [{name: a, key: '${env:NODE_KEY}'}, {name: b, key: '${env:NODE_KEY}'}]\n"
                .to_owned(),
            "listed twice",
        ),
        (
            "    mode: none\n    keys: [{name: a, key: '${env:NODE_KEY}'}]\n".to_owned(),
            "need `mode: api_key`",
        ),
        (
            format!(
                "    keys: [{{name: a, key: '${{env:NODE_KEY}}'}}, {{name: a, key: {ADMIN}-0123456789ab}}]\n"
            ),
            "listed twice",
        ),
        (
            "    admin_token: '${env:NODE_KEY}'\n    keys: [{name: a, key: '${env:NODE_KEY}'}]\n"
                .to_owned(),
            "the same as admin_token",
        ),
    ] {
        let err = parse(&extra).expect_err(&extra);
        let text = err.to_string();
        assert!(text.contains(expected), "{extra}: {text}");
        assert!(!text.contains(short) && !text.contains(LISTED), "{text}");
    }
    // Listed keys alone: no store is wanted; with `store:` both kinds are checked.
    let alone = parse("    keys: [{name: a, key: '${env:NODE_KEY}'}]\n").expect("valid");
    assert_eq!(alone.auth().expect("auth").1.store(), None);
    assert!(!format!("{alone:?}").contains(LISTED), "Debug hides keys");
    let both =
        parse("    store: sqlite\n    keys: [{name: a, key: '${env:NODE_KEY}'}]\n").expect("valid");
    assert_eq!(both.auth().expect("auth").1.store(), Some("sqlite"));
}

#[test]
fn listening_beyond_loopback_needs_api_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = llmscope::config::DEFAULT_CONFIG.replace(
        "${env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}",
        "0.0.0.0:4318",
    );
    let err = Config::parse("open.yaml", &open, &|_| None).expect_err("refused");
    assert_eq!(
        err.problems[0].path,
        "receivers.otlp.protocols.http.endpoint"
    );
    assert!(
        err.problems[0].message.contains("no API keys are required"),
        "{}",
        err.problems[0].message
    );
    let secured = config(&dir, "").clone();
    assert!(secured.auth().is_some());
    let with_auth = open
        .replace(
            "extensions:\n  api:",
            &format!("extensions:\n  auth:\n    admin_token: {ADMIN}\n  api:"),
        )
        .replace(
            "  extensions: [api, alerts]",
            "  extensions: [auth, api, alerts]",
        );
    assert!(Config::parse("secured.yaml", &with_auth, &|_| None).is_ok());
}

fn base64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, x| (acc << 8) | u32::from(*x)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One raw OTLP/gRPC call: `frame` as the message bytes, gzip-flagged when `gzip`; returns the
/// `grpc-status` and message.
async fn raw_grpc(
    addr: std::net::SocketAddr,
    key: &str,
    message: Vec<u8>,
    gzip: bool,
) -> (String, String) {
    use http_body_util::BodyExt as _;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut frame = vec![u8::from(gzip)];
    frame.extend_from_slice(&u32::try_from(message.len()).expect("size").to_be_bytes());
    frame.extend_from_slice(&message);
    let mut request = hyper::Request::post(format!(
        "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .header("authorization", format!("Bearer {key}"));
    if gzip {
        request = request.header("grpc-encoding", "gzip");
    }
    let request = request
        .body(http_body_util::Full::new(bytes::Bytes::from(frame)))
        .expect("request");
    let response = client.request(request).await.expect("response");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let get = |name: &str| {
        parts
            .headers
            .get(name)
            .or_else(|| trailers.get(name))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (get("grpc-status"), get("grpc-message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_refuses_a_wrong_key_before_it_reads_the_body() {
    let c = start().await;
    // Garbage that tonic would refuse as malformed, and a gzip bomb past the size limit: with a
    // wrong key, neither is decompressed nor decoded: the answer is UNAUTHENTICATED.
    let garbage = vec![0xff; 64];
    let (status, message) = raw_grpc(c.grpc, "lls_wrong", garbage.clone(), false).await;
    assert_eq!(status, "16", "{message}");
    let bomb = crate::harness::gzip(&vec![0u8; 24 << 20]);
    let (status, message) = raw_grpc(c.grpc, "lls_wrong", bomb, true).await;
    assert_eq!(status, "16", "{message}");
    let refused = c.telemetry().value(
        "llmscope_receiver_refused_requests_total",
        &[
            ("receiver", "otlp"),
            ("transport", "grpc"),
            ("reason", "unauthenticated"),
        ],
    );
    assert_eq!(refused, 2, "both counted");
    // With a valid key the same garbage is the client's malformed message.
    let (key, _) = create_key(&c, "team-a").await;
    let (status, _) = raw_grpc(c.grpc, &key, garbage, false).await;
    assert_eq!(status, "3", "INVALID_ARGUMENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_at_once_by_the_collector_that_revoked_it() {
    // A cache period far longer than the test: only forgetting the key can refuse it.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |text| {
        text.replace(
            "extensions:\n  api:",
            &format!("extensions:\n  auth:\n    admin_token: {ADMIN}\n    cache_ttl: 1h\n  api:"),
        )
        .replace(
            "  extensions: [api, alerts]",
            "  extensions: [auth, api, alerts]",
        )
    });
    let c = Collector::start_with(config, dir).await;
    let (key, id) = create_key(&c, "team-a").await;
    let bearer = format!("Bearer {key}");
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    let send = |trace| {
        c.post_otlp(
            "/v1/traces",
            &headers,
            fixture_with_trace(trace).into_bytes(),
        )
    };
    assert_eq!(send(1).await.status, StatusCode::OK, "cached now");
    let (status, _) = api(
        &c,
        Method::DELETE,
        &format!("/api/v1/keys/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(send(2).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_status_puts_readyz_and_metrics_behind_a_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text_config = default_config_with(&dir, |text| {
        text.replace(
            "extensions:\n  api:",
            &format!("extensions:\n  auth:\n    admin_token: {ADMIN}\n  api:"),
        )
        .replacen(
            "    store: sqlite\n",
            "    store: sqlite\n    private_status: true\n",
            1,
        )
        .replace(
            "  extensions: [api, alerts]",
            "  extensions: [auth, api, alerts]",
        )
    });
    let c = Collector::start_with(text_config, dir).await;
    for path in ["/metrics", "/readyz"] {
        let (status, _) = api(&c, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = api(&c, Method::GET, path, Some(ADMIN), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    let (status, _) = api(&c, Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "liveness stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_keeps_presenting_bad_keys_is_answered_ever_more_slowly() {
    let c = start().await;
    let c = &c;
    let bad = |n: u8| async move {
        let auth = format!("Bearer lls_bad{n}");
        let started = std::time::Instant::now();
        let r = c
            .post_otlp(
                "/v1/traces",
                &[
                    ("content-type", "application/json"),
                    ("authorization", &auth),
                ],
                fixture_with_trace(n).into_bytes(),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        started.elapsed()
    };
    // The first few failures are answered at once; later ones wait (100 ms more each).
    for n in 0..5 {
        bad(n).await;
    }
    let tenth = {
        for n in 5..9 {
            bad(n).await;
        }
        bad(9).await
    };
    assert!(tenth >= Duration::from_millis(400), "held {tenth:?}");
    // A client with a good key is not slowed.
    let (key, _) = create_key(c, "team-a").await;
    let good = c
        .post_otlp(
            "/v1/traces",
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {key}")),
            ],
            fixture_with_trace(42).into_bytes(),
        )
        .await;
    assert_eq!(good.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_a_client_with_bad_keys_ever_more_slowly_too() {
    let c = start().await;
    let mut last = Duration::ZERO;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let (status, _) = api(&c, Method::GET, "/api/v1/traces", Some("lls_bad"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        last = started.elapsed();
    }
    assert!(last >= Duration::from_millis(400), "held {last:?}");
}
