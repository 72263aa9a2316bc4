//! The live stream end to end: a real OpenTelemetry SDK sends, real WebSocket and SSE clients
//! receive; filters, isolation, tokens, limits, resumption, slow subscribers and the fan-out
//! between two collectors through Redis.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, Empty};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanExporter as _};
use serde_json::{Value as J, json};
use tokio_tungstenite::tungstenite;

use crate::alerts::Call;
use crate::harness::{Collector, default_config_with};
use crate::limits::{RedisGuard, free_port, redis_server};

/// One chat call recorded with the OpenTelemetry SDK and sent with its OTLP/HTTP exporter,
/// with an e-mail address in the prompt; `headers` go along (an API key).
async fn sdk_call(c: &Collector, model: &str, headers: &[(&str, &str)]) {
    let recorded = InMemorySpanExporter::default();
    let resource = Resource::builder().with_service_name("chatbot").build();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(recorded.clone())
        .with_resource(resource.clone())
        .build();
    let tracer = provider.tracer("stream-test");
    let prompt = json!([{"role": "user", "parts": [{"type": "text",
        "content": "Mail the summary to jane.doe@example.com"}]}]);
    let span = tracer
        .span_builder(format!("chat {model}"))
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.request.model", model.to_owned()),
            KeyValue::new("gen_ai.usage.input_tokens", 1000),
            KeyValue::new("gen_ai.usage.output_tokens", 50),
            KeyValue::new("gen_ai.input.messages", prompt.to_string()),
        ])
        .start(&tracer);
    drop(span);
    let spans = recorded.get_finished_spans().expect("recorded");
    let mut exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("http://{}/v1/traces", c.http))
        .with_headers(
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
        .build()
        .expect("exporter");
    exporter.set_resource(&resource);
    exporter.export(spans).await.expect("exported");
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn websocket(c: &Collector, query: &str, headers: &[(&str, &str)]) -> Ws {
    let mut request = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}/api/v1/stream?{query}",
        c.api
    ))
    .expect("request");
    for (k, v) in headers {
        request.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("header"),
        );
    }
    tokio_tungstenite::connect_async(request)
        .await
        .expect("WebSocket connects")
        .0
}

/// The next JSON message that is not a heartbeat, within `within`.
async fn next_ws(ws: &mut Ws, within: Duration) -> Option<J> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, ws.next()).await {
            Ok(Some(Ok(tungstenite::Message::Text(t)))) => {
                let v: J = serde_json::from_str(&t).expect("JSON");
                if v["type"] != "heartbeat" {
                    return Some(v);
                }
            }
            Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                return Some(
                    json!({"closed": frame.map(|f| (u16::from(f.code), f.reason.to_string()))}),
                );
            }
            Ok(Some(Ok(_))) => {}
            _ => return None,
        }
    }
}

/// A Server-Sent Events reader over a plain HTTP response.
struct Sse {
    body: hyper::body::Incoming,
    buffer: String,
}

/// One event: its `id:` and `data:`.
type Event = (Option<String>, J);

async fn sse(
    c: &Collector,
    query: &str,
    headers: &[(&str, &str)],
) -> Result<Sse, (StatusCode, String)> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(format!("http://{}/api/v1/stream?{query}", c.api))
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = client
        .request(request.body(Empty::new()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    if status != StatusCode::OK {
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        return Err((status, String::from_utf8_lossy(&body).into_owned()));
    }
    assert_eq!(
        response.headers()["content-type"].to_str().expect("type"),
        "text/event-stream"
    );
    Ok(Sse {
        body: response.into_body(),
        buffer: String::new(),
    })
}

impl Sse {
    async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a heartbeat comment
                }
                return Some((id, serde_json::from_str(&data).expect("JSON data")));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                _ => return None,
            }
        }
    }
}

fn config_with(extra_stream: &str) -> impl FnOnce(&str) -> String + '_ {
    move |text: &str| {
        text.replacen(
            "    store: sqlite\n",
            &format!("    store: sqlite\n    stream:\n      heartbeat: 1s\n{extra_stream}"),
            1,
        )
    }
}

async fn start(extra_stream: &str) -> Collector {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, config_with(extra_stream));
    Collector::start_with(config, dir).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_sse_clients_receive_a_redacted_priced_call_within_a_second() {
    let c = start("").await;
    let mut ws = websocket(&c, "model=gpt-4o-mini", &[]).await;
    let mut events = sse(&c, "kind=llm_calls", &[]).await.expect("SSE");
    let mut spans = sse(&c, "kind=spans&errors_only=true", &[])
        .await
        .expect("SSE");
    // Heartbeats arrive on an idle stream.
    let beat = tokio::time::timeout(Duration::from_secs(3), ws.next()).await;
    let beat: J = match beat {
        Ok(Some(Ok(tungstenite::Message::Text(t)))) => serde_json::from_str(&t).expect("JSON"),
        other => panic!("no heartbeat: {other:?}"),
    };
    assert_eq!(beat["type"], "heartbeat");

    sdk_call(&c, "gpt-4o", &[]).await;
    let sent = Instant::now();
    sdk_call(&c, "gpt-4o-mini", &[]).await;

    let got = next_ws(&mut ws, Duration::from_secs(5))
        .await
        .expect("a message");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(got["type"], "span", "{got}");
    let g = &got["data"]["gen_ai"];
    assert_eq!(
        g["request_model"], "gpt-4o-mini",
        "the model filter holds: {got}"
    );
    assert_eq!(
        (g["input_tokens"].as_i64(), g["output_tokens"].as_i64()),
        (Some(1000), Some(50))
    );
    assert!(
        g["cost_usd"].as_f64().is_some_and(|c| c > 0.0),
        "priced: {g}"
    );
    let text = got.to_string();
    assert!(!text.contains("jane.doe@example.com"), "redacted: {text}");
    assert!(text.contains("Mail the summary to"), "{text}");
    assert_eq!(got["data"]["service"], "chatbot");
    assert_eq!(got["data"]["trace_id"].as_str().map(str::len), Some(32));

    let (id1, first) = events
        .next(Duration::from_secs(5))
        .await
        .expect("SSE event");
    let (id2, second) = events
        .next(Duration::from_secs(5))
        .await
        .expect("SSE event");
    assert_eq!(first["data"]["gen_ai"]["request_model"], "gpt-4o");
    assert_eq!(second["data"]["gen_ai"]["request_model"], "gpt-4o-mini");
    assert!(
        id1.is_some() && id2.is_some() && id1 != id2,
        "{id1:?} {id2:?}"
    );
    assert!(
        spans.next(Duration::from_millis(500)).await.is_none(),
        "no errors were sent"
    );
    crate::alerts::send(&c, &[Call::failed("broken-model")]).await;
    let (_, failed) = spans.next(Duration::from_secs(5)).await.expect("the error");
    assert_eq!(failed["data"]["status"], "error", "{failed}");
    assert_eq!(failed["data"]["gen_ai"]["request_model"], "broken-model");
    assert!(ws.close(None).await.is_ok());
    let metrics = String::from_utf8(c.get("/metrics").await.body).expect("utf-8");
    assert!(metrics.contains("llmscope_stream_subscribers"), "{metrics}");
    assert!(
        metrics.contains("llmscope_stream_messages_total{result=\"sent\"}"),
        "{metrics}"
    );
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_resumes_after_its_last_event_id_or_is_told_what_it_missed() {
    let c = start("").await;
    let mut first = sse(&c, "", &[]).await.expect("SSE");
    crate::alerts::send(&c, &[Call::ok("m1")]).await;
    let (id, _) = first.next(Duration::from_secs(5)).await.expect("first");
    let id = id.expect("an id");
    drop(first);
    crate::alerts::send(&c, &[Call::ok("m2"), Call::ok("m3")]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut again = sse(&c, "", &[("last-event-id", id.as_str())])
        .await
        .expect("SSE");
    let models: Vec<J> = [
        again.next(Duration::from_secs(5)).await.expect("m2").1,
        again.next(Duration::from_secs(5)).await.expect("m3").1,
    ]
    .iter()
    .map(|e| e["data"]["gen_ai"]["request_model"].clone())
    .collect();
    assert_eq!(models, [json!("m2"), json!("m3")]);

    let mut unknown = sse(&c, "last_event_id=feedface-12", &[])
        .await
        .expect("SSE");
    let (_, said) = unknown
        .next(Duration::from_secs(5))
        .await
        .expect("what was missed");
    assert_eq!(
        said,
        json!({"type": "dropped", "count": null, "reason": "unknown_event_id"})
    );
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_loses_the_oldest_and_is_told_how_many() {
    let c = start("      buffer: 16\n").await;
    let mut ws = websocket(&c, "kind=spans", &[]).await;
    // 40 requests of 50 spans while the client reads nothing.
    for _ in 0..40 {
        let batch: Vec<Call<'_>> = (0..50).map(|_| Call::ok("m")).collect();
        crate::alerts::send(&c, &batch).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut received = 0;
    let mut dropped = 0;
    while let Some(m) = next_ws(&mut ws, Duration::from_millis(500)).await {
        match m["type"].as_str() {
            Some("span") => received += 1,
            Some("dropped") => {
                assert_eq!(m["reason"], "slow_subscriber");
                dropped += m["count"].as_u64().expect("count");
            }
            other => panic!("unexpected {other:?}: {m}"),
        }
    }
    assert!(dropped > 0, "received {received}, dropped {dropped}");
    assert_eq!(
        received + dropped,
        2000,
        "every span is either received or counted as dropped"
    );
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_past_the_limits_are_refused_with_a_reason() {
    let c = start("      max_subscribers_per_project: 1\n").await;
    let _held = sse(&c, "", &[]).await.expect("the first");
    let (status, body) = match sse(&c, "", &[]).await {
        Err(refused) => refused,
        Ok(_) => panic!("a second subscriber was let in"),
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.contains("too many stream subscribers for this project"),
        "{body}"
    );
    let mut ws = websocket(&c, "", &[]).await;
    let closed = next_ws(&mut ws, Duration::from_secs(5))
        .await
        .expect("a close");
    let (code, reason) =
        serde_json::from_value::<(u16, String)>(closed["closed"].clone()).expect("a close frame");
    assert_eq!(code, 1013);
    assert!(reason.contains("too many"), "{reason}");
    let bad = c.get("/api/v1/stream?kind=logs").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let plain = c.get("/api/v1/stream").await;
    assert_eq!(
        plain.status,
        StatusCode::BAD_REQUEST,
        "neither WebSocket nor SSE"
    );
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sees_its_own_project_only_and_browsers_use_short_lived_tokens() {
    const ADMIN: &str = "admin-token-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |t| {
        config_with("")(t)
            .replace(
                "extensions:\n",
                &format!("extensions:\n  auth:\n    admin_token: {ADMIN}\n"),
            )
            .replace("[api, alerts]", "[auth, api, alerts]")
    });
    let mut c = Collector::start_with(config, dir).await;
    c.api_headers = vec![("authorization".into(), format!("Bearer {ADMIN}"))];
    let mut keys = Vec::new();
    for project in ["a", "b"] {
        let (_, body) = crate::alerts::api(
            &c,
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"project": project, "name": "ci"})),
        )
        .await;
        keys.push(format!("Bearer {}", body["key"].as_str().expect("key")));
    }
    let refused = sse(&c, "", &[]).await.err().expect("no key");
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED);
    let mut a = sse(&c, "", &[("authorization", keys[0].as_str())])
        .await
        .expect("SSE");
    let mut a_ws = websocket(&c, "", &[("authorization", keys[0].as_str())]).await;

    // A browser: a token for project a, then the stream with ?token= and no header.
    c.api_headers = vec![("authorization".into(), keys[0].clone())];
    let reply = c
        .request(
            Method::POST,
            format!("http://{}/api/v1/stream/token", c.api),
            &[("authorization", keys[0].as_str())],
            Vec::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let token = reply.json()["token"].as_str().expect("token").to_owned();
    let mut browser = sse(&c, &format!("token={token}"), &[])
        .await
        .expect("SSE by token");
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(
        sse(&c, &format!("token={forged}"), &[])
            .await
            .err()
            .map(|e| e.0),
        Some(StatusCode::UNAUTHORIZED)
    );

    sdk_call(&c, "model-of-b", &[("authorization", keys[1].as_str())]).await;
    sdk_call(&c, "model-of-a", &[("authorization", keys[0].as_str())]).await;
    for (name, got) in [
        ("header", a.next(Duration::from_secs(5)).await.map(|e| e.1)),
        (
            "token",
            browser.next(Duration::from_secs(5)).await.map(|e| e.1),
        ),
        (
            "websocket",
            next_ws(&mut a_ws, Duration::from_secs(5)).await,
        ),
    ] {
        let got = got.unwrap_or_else(|| panic!("{name}: nothing"));
        assert_eq!(
            got["data"]["gen_ai"]["request_model"], "model-of-a",
            "{name}: {got}"
        );
    }
    assert!(
        a.next(Duration::from_millis(700)).await.is_none(),
        "nothing of b"
    );
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_transitions_are_streamed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |t| {
        config_with("")(t).replace(
            "  alerts:\n    store: sqlite\n",
            "  alerts:\n    store: sqlite\n    evaluation_interval: 1s\n",
        )
    });
    let c = Collector::start_with(config, dir).await;
    let (status, rule) = crate::alerts::api(
        &c,
        Method::POST,
        "/api/v1/alert-rules",
        Some(
            &json!({"name": "traffic", "metric": "requests", "group_by": ["model"],
                     "window": "1m", "op": ">", "threshold": 0}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let mut alerts = sse(&c, "kind=alerts&model=m-alert", &[])
        .await
        .expect("SSE");
    crate::alerts::send(&c, &[Call::ok("m-alert")]).await;
    let (_, got) = alerts
        .next(Duration::from_secs(10))
        .await
        .expect("an alert");
    assert_eq!(got["type"], "alert");
    assert_eq!(got["data"]["state"], "firing");
    assert_eq!(got["data"]["series"], json!({"model": "m-alert"}));
    assert_eq!(got["data"]["rule"]["id"], rule["id"]);
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_sharing_redis_deliver_a_span_once_to_each_subscriber() {
    let Some(redis) = llmscope_core::test_util::service_url("LLMSCOPE_TEST_REDIS_URL") else {
        return;
    };
    let prefix = format!("llmscope-test:stream:{}", std::process::id());
    let extra = format!("      redis_url: {redis}\n      redis_prefix: {prefix}\n");
    let a = start(&extra).await;
    let b = start(&extra).await;
    let mut on_b = sse(&b, "", &[]).await.expect("SSE on b");
    let mut on_a = websocket(&a, "", &[]).await;
    // Interest reaches the other collector within its next refresh (a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sdk_call(&a, "gpt-4o-mini", &[]).await;
    let (_, got) = on_b
        .next(Duration::from_secs(5))
        .await
        .expect("the span on b");
    assert_eq!(got["data"]["gen_ai"]["request_model"], "gpt-4o-mini");
    let local = next_ws(&mut on_a, Duration::from_secs(5))
        .await
        .expect("the span on a");
    assert_eq!(local["data"]["span_id"], got["data"]["span_id"]);
    assert!(
        on_b.next(Duration::from_secs(1)).await.is_none(),
        "once on b"
    );
    assert!(
        next_ws(&mut on_a, Duration::from_millis(500))
            .await
            .is_none(),
        "once on a"
    );
    let metrics = String::from_utf8(b.get("/metrics").await.body).expect("utf-8");
    assert!(
        metrics.contains("llmscope_stream_messages_total{result=\"received_from_redis\"} 1"),
        "{metrics}"
    );
    assert!(a.stop().await && b.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_degrades_to_local_delivery_and_heals_by_itself() {
    // Only where the services run (CI, a dev machine): this test brings its own redis-server.
    if llmscope_core::test_util::service_url("LLMSCOPE_TEST_REDIS_URL").is_none() {
        return;
    }
    let port = free_port();
    let redis = RedisGuard(redis_server(port));
    let extra = format!("      redis_url: redis://127.0.0.1:{port}\n");
    let a = start(&extra).await;
    let b = start(&extra).await;
    let mut on_a = sse(&a, "", &[]).await.expect("SSE on a");
    let mut on_b = sse(&b, "", &[]).await.expect("SSE on b");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    crate::alerts::send(&a, &[Call::ok("before")]).await;
    assert!(
        on_b.next(Duration::from_secs(5)).await.is_some(),
        "delivered through Redis"
    );
    assert!(on_a.next(Duration::from_secs(5)).await.is_some());

    drop(redis);
    crate::alerts::send(&a, &[Call::ok("during")]).await;
    let (_, local) = on_a
        .next(Duration::from_secs(5))
        .await
        .expect("still delivered locally");
    assert_eq!(local["data"]["gen_ai"]["request_model"], "during");
    let metrics = || async { String::from_utf8(a.get("/metrics").await.body).expect("utf-8") };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !metrics()
        .await
        .lines()
        .any(|l| l.starts_with("llmscope_stream_redis_errors_total ") && !l.ends_with(" 0"))
    {
        assert!(Instant::now() < deadline, "the outage was never counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let _back = RedisGuard(redis_server(port));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        crate::alerts::send(&a, &[Call::ok("after")]).await;
        if let Some((_, got)) = on_b.next(Duration::from_millis(500)).await
            && got["data"]["gen_ai"]["request_model"] == "after"
        {
            break;
        }
        assert!(Instant::now() < deadline, "never healed");
    }
    assert!(a.stop().await && b.stop().await);
}
