//! Alerts end to end: rules through the API, evaluation over real stored calls, and delivery to
//! a real HTTP receiver that checks Standard Webhooks signatures and can fail on purpose.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use hyper::{Method, StatusCode};
use serde_json::{Value as J, json};
use sha2::Sha256;

use crate::harness::{Collector, default_config_with};

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> J {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Checks the Standard Webhooks signature against `secret`, as a receiver would.
    pub fn signed_with(&self, secret: &str) -> bool {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.trim_start_matches("whsec_"))
            .expect("secret");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
        let signed = format!(
            "{}.{}.{}",
            self.header("webhook-id"),
            self.header("webhook-timestamp"),
            self.body
        );
        mac.update(signed.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        self.header("webhook-signature")
            .split(' ')
            .any(|s| s == format!("v1,{expected}"))
    }
}

/// Per path, the answers still to give: status and `Retry-After` seconds.
type Script = HashMap<String, VecDeque<(u16, Option<u64>)>>;

/// A webhook receiver on loopback: records every request, answers each path from its script
/// (status, `Retry-After`), 200 once the script is used up.
#[derive(Clone)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let r = Self {
            addr: listener.local_addr().expect("addr"),
            log: Arc::default(),
            script: Arc::default(),
        };
        let handler = {
            let r = r.clone();
            move |request: axum::extract::Request| {
                let r = r.clone();
                async move {
                    let path = request.uri().path().to_owned();
                    let headers = request.headers().clone();
                    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                        .await
                        .unwrap_or_default();
                    r.log.lock().expect("log").push(Received {
                        path: path.clone(),
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                        at: Instant::now(),
                    });
                    let next = r
                        .script
                        .lock()
                        .expect("script")
                        .get_mut(&path)
                        .and_then(VecDeque::pop_front);
                    let (status, retry_after) = next.unwrap_or((200, None));
                    let mut response = axum::response::Response::new(axum::body::Body::empty());
                    *response.status_mut() = StatusCode::from_u16(status).expect("status");
                    if let Some(s) = retry_after {
                        response
                            .headers_mut()
                            .insert("retry-after", s.to_string().parse().expect("header"));
                    }
                    response
                }
            }
        };
        let app = axum::Router::new().fallback(handler);
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests to `path` with these statuses (and `Retry-After` seconds).
    pub fn script(&self, path: &str, answers: &[(u16, Option<u64>)]) {
        self.script
            .lock()
            .expect("script")
            .insert(path.to_owned(), answers.iter().copied().collect());
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        let log = self.log.lock().expect("log");
        log.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `path` has had `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} requests within {within:?}: {got:#?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Runs the signature verifier `otel-config/README.md` shows on a delivery, with `python3`.
fn documented_verifier_accepts(r: &Received) -> bool {
    let readme = include_str!("../../../otel-config/README.md");
    let start = readme.find("```python\n").expect("a Python block") + "```python\n".len();
    let code = &readme[start..start + readme[start..].find("```").expect("its end")];
    let headers: HashMap<&str, &str> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .map(|h| (h, r.header(h)))
        .collect();
    let input = json!({"headers": headers, "body": r.body}).to_string();
    let program = format!(
        "{code}\nimport json, sys\nd = json.load(sys.stdin)\nprint(verify({SECRET:?}, d['headers'], d['body'].encode()))\n"
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &program])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 ran");
    String::from_utf8_lossy(&out.stdout).trim() == "True"
}

/// One model call to send.
pub struct Call<'a> {
    pub model: &'a str,
    pub error: bool,
    pub user: Option<&'a str>,
    pub input_tokens: i64,
    pub latency_ms: u64,
}

impl<'a> Call<'a> {
    pub fn ok(model: &'a str) -> Self {
        Self {
            model,
            error: false,
            user: None,
            input_tokens: 100,
            latency_ms: 200,
        }
    }

    pub fn failed(model: &'a str) -> Self {
        Self {
            error: true,
            ..Self::ok(model)
        }
    }
}

/// OTLP/JSON for these calls, each its own trace, just ended.
pub fn calls(service: &str, calls: &[Call<'_>]) -> Vec<u8> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos() as u64;
    let spans: Vec<J> = calls
        .iter()
        .map(|c| {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let mut attributes = vec![
                json!({"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}),
                json!({"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}}),
                json!({"key": "gen_ai.request.model", "value": {"stringValue": c.model}}),
                json!({"key": "gen_ai.response.model", "value": {"stringValue": c.model}}),
                json!({"key": "gen_ai.usage.input_tokens", "value": {"intValue": c.input_tokens.to_string()}}),
                json!({"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}}),
            ];
            if let Some(u) = c.user {
                attributes.push(json!({"key": "user.id", "value": {"stringValue": u}}));
            }
            json!({
                "traceId": format!("{now:016x}{n:016x}"),
                "spanId": format!("{n:016x}"),
                "name": format!("chat {}", c.model),
                "kind": 3,
                "startTimeUnixNano": (now - 100_000_000 - c.latency_ms * 1_000_000).to_string(),
                "endTimeUnixNano": (now - 100_000_000).to_string(),
                "attributes": attributes,
                "status": {"code": if c.error { 2 } else { 1 }},
            })
        })
        .collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]
    }]})
    .to_string()
    .into_bytes()
}

pub async fn send(c: &Collector, batch: &[Call<'_>]) {
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[("content-type", "application/json")],
            calls("chatbot", batch),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

/// The default config with the alerts extension (`extra` lines under it) evaluating every
/// second.
fn config_text(text: &str, extra: &str) -> String {
    let alerts = "  alerts:\n    store: sqlite\n";
    assert!(text.contains(alerts), "the default config runs alerts");
    text.replace(
        alerts,
        &format!(
            "{alerts}    evaluation_interval: 1s\n    delivery:\n      initial_interval: 300ms\n      max_interval: 2s\n{extra}"
        ),
    )
}

async fn start(extra: &str) -> Collector {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |t| config_text(t, extra));
    let mut c = Collector::start_with(config, dir).await;
    c.db = c.dir().join("data/llmscope.db");
    c
}

async fn start_allowing_loopback() -> Collector {
    start("    allow_private_targets: true\n").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anomaly_rule_fires_on_the_anomaly_without_waiting_for_the_next_tick() {
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Evaluation once an hour: only the anomaly itself can make the rule fire within the test.
    let config = default_config_with(&dir, |t| {
        config_text(t, "    allow_private_targets: true\n")
            .replace("evaluation_interval: 1s", "evaluation_interval: 1h")
            .replace("  anomaly:\n", "  anomaly:\n    warmup: 10\n")
    });
    let c = Collector::start_with(config, dir).await;
    create(
        &c,
        &json!({"name": "latency spikes", "metric": "anomalies", "filter": {"kind": "latency"},
                "window": "10m", "op": ">", "threshold": 0, "notify": [webhook(&hook, "/hook")]}),
    )
    .await;
    // The evaluator's first tick (at start) has passed; the baseline warms up quietly.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..20 {
        let mut call = Call::ok("model-a");
        call.latency_ms = 200 + i % 3;
        send(&c, &[call]).await;
    }
    assert!(hook.received("/hook").is_empty());
    let spiked = Instant::now();
    let mut slow = Call::ok("model-a");
    slow.latency_ms = 4000;
    send(&c, &[slow]).await;
    let got = hook.wait_for("/hook", 1, Duration::from_secs(10)).await;
    let body = got[0].json();
    assert_eq!(body["type"], "alert.firing", "{body}");
    assert_eq!(body["series"], json!({}));
    assert_eq!(body["value"], 1.0);
    assert!(
        got[0].at - spiked < Duration::from_secs(5),
        "{:?}",
        got[0].at - spiked
    );
    assert!(c.stop().await);
}

pub async fn api(c: &Collector, method: Method, path: &str, body: Option<&J>) -> (StatusCode, J) {
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    headers.extend(c.api_headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let body = body.map_or_else(Vec::new, |b| b.to_string().into_bytes());
    let reply = c
        .request(method, format!("http://{}{path}", c.api), &headers, body)
        .await;
    (
        reply.status,
        serde_json::from_slice(&reply.body).unwrap_or(J::Null),
    )
}

async fn create(c: &Collector, rule: &J) -> String {
    let (status, body) = api(c, Method::POST, "/api/v1/alert-rules", Some(rule)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

fn webhook(r: &Receiver, path: &str) -> J {
    json!({"type": "webhook", "url": r.url(path), "secret": SECRET})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_rate_rule_by_model_fires_for_the_failing_model_once_signed_and_resolves() {
    let hook = Receiver::start().await;
    let c = start_allowing_loopback().await;
    let id = create(
        &c,
        &json!({"name": "error rate", "metric": "error_rate", "group_by": ["model"],
                "window": "5s", "op": ">", "threshold": 0.2,
                "notify": [webhook(&hook, "/hook")]}),
    )
    .await;
    let mut batch: Vec<Call<'_>> = (0..4).map(|_| Call::ok("model-a")).collect();
    batch.extend([
        Call::failed("model-b"),
        Call::failed("model-b"),
        Call::ok("model-b"),
    ]);
    send(&c, &batch).await;

    let got = hook.wait_for("/hook", 1, Duration::from_secs(15)).await;
    let fired = &got[0];
    assert!(fired.signed_with(SECRET), "signature: {fired:?}");
    assert!(
        documented_verifier_accepts(fired),
        "the README's Python verifier"
    );
    let sent_at: i64 = fired
        .header("webhook-timestamp")
        .parse()
        .expect("timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    assert!((now - sent_at).abs() < 60, "timestamp {sent_at} vs {now}");
    assert!(fired.header("webhook-id").starts_with("msg_"));
    let body = fired.json();
    assert_eq!(body["type"], "alert.firing", "{body}");
    assert_eq!(body["series"], json!({"model": "model-b"}));
    assert_eq!(body["rule"]["id"], id.as_str());
    assert_eq!(body["rule"]["metric"], "error_rate");
    let value = body["value"].as_f64().expect("value");
    assert!((value - 2.0 / 3.0).abs() < 1e-9, "{value}");
    assert!(body["url"].as_str().expect("url").contains(&id));

    // Two more evaluations: nothing new (delivered once; model-a never over the threshold).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(hook.received("/hook").len(), 1);

    // The errors stop: successful calls bring the rate down until the series resolves.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hook.received("/hook").len() < 2 {
        assert!(Instant::now() < deadline, "never resolved");
        send(&c, &[Call::ok("model-b"), Call::ok("model-b")]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let resolved = &hook.received("/hook")[1];
    assert!(resolved.signed_with(SECRET));
    let body = resolved.json();
    assert_eq!(body["type"], "alert.resolved");
    assert_eq!(body["series"], json!({"model": "model-b"}));
    assert_ne!(resolved.header("webhook-id"), fired.header("webhook-id"));

    let (_, history) = api(&c, Method::GET, &format!("/api/v1/alerts?rule={id}"), None).await;
    let states: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "firing").count(),
        1,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "resolved").count(),
        1,
        "{states:?}"
    );
    assert!(
        states.iter().filter(|s| **s == "delivered").count() >= 1,
        "{states:?}"
    );
    let (_, only_firing) = api(
        &c,
        Method::GET,
        &format!("/api/v1/alerts?rule={id}&state=firing"),
        None,
    )
    .await;
    assert_eq!(
        only_firing["events"][0]["series"],
        json!({"model": "model-b"})
    );
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn for_delays_firing_and_renotify_repeats() {
    let hook = Receiver::start().await;
    let c = start_allowing_loopback().await;
    create(
        &c,
        &json!({"name": "any error", "metric": "errors", "filter": {"service": "chatbot"},
                "window": "10s", "op": ">", "threshold": 0, "for": "3s", "renotify": "2s",
                "notify": [webhook(&hook, "/hook")]}),
    )
    .await;
    let first_error = Instant::now();
    let deadline = first_error + Duration::from_secs(20);
    while hook.received("/hook").len() < 2 && Instant::now() < deadline {
        send(&c, &[Call::failed("model-a")]).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = hook.wait_for("/hook", 2, Duration::from_secs(1)).await;
    let waited = got[0].at - first_error;
    assert!(
        waited >= Duration::from_secs(3),
        "fired after {waited:?}, before `for`"
    );
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1500),
        "renotified after {gap:?}"
    );
    for r in &got[..2] {
        assert_eq!(r.json()["type"], "alert.firing");
        assert_eq!(r.json()["series"], json!({}));
        assert!(r.signed_with(SECRET));
    }
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_is_retried_and_a_gone_one_is_disabled() {
    let hook = Receiver::start().await;
    hook.script("/flaky", &[(503, Some(1)), (500, None)]);
    hook.script("/gone", &[(410, None)]);
    let c = start_allowing_loopback().await;
    let id = create(
        &c,
        &json!({"name": "traffic", "metric": "requests", "window": "3s", "op": ">",
                "threshold": 0, "notify": [webhook(&hook, "/flaky"), webhook(&hook, "/gone"),
                {"type": "slack", "url": hook.url("/slack")}]}),
    )
    .await;
    send(&c, &[Call::ok("model-a")]).await;

    let flaky = hook.wait_for("/flaky", 3, Duration::from_secs(20)).await;
    let ids: Vec<&str> = flaky.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one id for every attempt: {ids:?}"
    );
    assert!(
        flaky
            .iter()
            .all(|r| r.body == flaky[0].body && r.signed_with(SECRET))
    );
    assert!(
        flaky[1].at - flaky[0].at >= Duration::from_millis(900),
        "Retry-After: 1 honoured: {:?}",
        flaky[1].at - flaky[0].at
    );
    let slack = hook.wait_for("/slack", 1, Duration::from_secs(5)).await;
    let text = slack[0].json()["text"].as_str().expect("text").to_owned();
    assert!(text.contains("[FIRING] traffic"), "{text}");
    assert_eq!(hook.received("/gone").len(), 1);

    // The 410 disabled that channel: the rule says so, and the resolution skips it.
    let (_, rule) = api(&c, Method::GET, &format!("/api/v1/alert-rules/{id}"), None).await;
    assert_eq!(rule["notify"][1]["disabled"], true, "{rule}");
    assert_eq!(rule["notify"][0].get("disabled"), None, "{rule}");
    let resolved = hook.wait_for("/flaky", 4, Duration::from_secs(20)).await;
    assert_eq!(resolved[3].json()["type"], "alert.resolved");
    hook.wait_for("/slack", 2, Duration::from_secs(5)).await;
    assert_eq!(hook.received("/gone").len(), 1);

    let (_, history) = api(&c, Method::GET, &format!("/api/v1/alerts?rule={id}"), None).await;
    let events = history["events"].as_array().expect("events");
    let count = |state: &str| events.iter().filter(|e| e["state"] == state).count();
    assert_eq!(count("delivery_retry"), 2, "{history:#}");
    assert_eq!(count("channel_disabled"), 1, "{history:#}");
    let retry = events
        .iter()
        .find(|e| e["state"] == "delivery_retry")
        .expect("a retry");
    assert!(
        retry["details"]["status"]
            .as_u64()
            .is_some_and(|s| s >= 500)
    );
    assert!(
        !history.to_string().contains("MfKQ9r8"),
        "no secret in the history"
    );
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_user_budget_fires_for_exactly_the_users_over_it() {
    let hook = Receiver::start().await;
    let c = start_allowing_loopback().await;
    create(
        &c,
        &json!({"name": "budget", "metric": "cost_usd", "group_by": ["user"], "window": "1h",
                "op": ">", "threshold": 1.0, "notify": [webhook(&hook, "/hook"),
                {"type": "alertmanager", "url": hook.url("/am")}]}),
    )
    .await;
    // gpt-4o input is $2.50 per million tokens.
    let call = |user, input_tokens| Call {
        model: "gpt-4o",
        error: false,
        user: Some(user),
        input_tokens,
        latency_ms: 200,
    };
    send(
        &c,
        &[
            call("alice", 300_000),
            call("alice", 300_000), // $1.50 + output
            call("bob", 200_000),   // $0.50
            call("carol", 500_000), // $1.25
            call("dave", 390_000),  // $0.975 + $0.0001 output: under
        ],
    )
    .await;
    hook.wait_for("/hook", 2, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut users: Vec<(String, f64)> = hook
        .received("/hook")
        .iter()
        .map(|r| {
            let b = r.json();
            assert_eq!(b["type"], "alert.firing");
            (
                b["series"]["user"].as_str().expect("user").to_owned(),
                b["value"].as_f64().expect("value"),
            )
        })
        .collect();
    users.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = users.iter().map(|u| u.0.as_str()).collect();
    assert_eq!(names, ["alice", "carol"]);
    assert!((users[0].1 - 1.5002).abs() < 1e-6, "{users:?}");
    // The same in Alertmanager's webhook shape.
    let am = hook.wait_for("/am", 2, Duration::from_secs(5)).await;
    let mut am_users: Vec<String> = am
        .iter()
        .map(|r| {
            let b = r.json();
            assert_eq!(
                (b["version"].as_str(), b["status"].as_str()),
                (Some("4"), Some("firing"))
            );
            let alert = &b["alerts"][0];
            assert_eq!(alert["labels"]["alertname"], "budget");
            assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
            alert["labels"]["user"]
                .as_str()
                .expect("user label")
                .to_owned()
        })
        .collect();
    am_users.sort();
    assert_eq!(am_users, ["alice", "carol"]);
    assert!(c.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_by_name_and_by_resolved_address_unless_allowed() {
    let hook = Receiver::start().await;
    let strict = start("").await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://[::1]:9/x",
        "http://localhost:9/x",
    ] {
        let rule = json!({"name": "r", "metric": "requests", "window": "5s", "op": ">",
                          "threshold": 0, "notify": [{"type": "slack", "url": url}]});
        let (status, body) = api(&strict, Method::POST, "/api/v1/alert-rules", Some(&rule)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["field"], "notify[0].url", "{body}");
        assert!(
            body["error"]
                .as_str()
                .expect("error")
                .contains("allow_private_targets")
        );
    }
    // `127.1` is no address to a name check, but resolves to 127.0.0.1: refused when sent.
    let sneaky = format!("http://127.1:{}/hook", hook.addr.port());
    let rule = json!({"name": "sneaky", "metric": "requests", "window": "5s", "op": ">",
                      "threshold": 0, "notify": [{"type": "webhook", "url": sneaky, "secret": SECRET}]});
    let id = create(&strict, &rule).await;
    send(&strict, &[Call::ok("model-a")]).await;
    let history = strict
        .eventually(
            &format!("/api/v1/alerts?rule={id}&state=delivery_refused"),
            |h| h["events"].as_array().is_some_and(|e| !e.is_empty()),
        )
        .await;
    let error = history["events"][0]["details"]["error"]
        .as_str()
        .expect("error");
    assert!(error.contains("private"), "{error}");
    assert!(
        hook.received("/hook").is_empty(),
        "nothing reached the private target"
    );
    assert!(strict.stop().await);

    let allowed = start_allowing_loopback().await;
    create(&allowed, &rule).await;
    send(&allowed, &[Call::ok("model-a")]).await;
    let got = hook.wait_for("/hook", 1, Duration::from_secs(15)).await;
    assert!(got[0].signed_with(SECRET));
    assert!(allowed.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_declared_in_config_are_read_only_and_checked_at_start() {
    let rule = "    rules:\n      - name: from config\n        project: team-a\n        metric: requests\n        window: 5m\n        op: \">\"\n        threshold: 100\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |t| config_text(t, rule));
    let c = Collector::start_with(config, dir).await;
    let (_, listed) = api(&c, Method::GET, "/api/v1/alert-rules?project=team-a", None).await;
    let stored = &listed["rules"][0];
    assert_eq!(stored["name"], "from config", "{listed}");
    assert_eq!(stored["source"], "config");
    let path = format!(
        "/api/v1/alert-rules/{}?project=team-a",
        stored["id"].as_str().expect("id")
    );
    let (status, body) = api(&c, Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = api(
        &c,
        Method::PUT,
        &path,
        Some(&json!({"name": "x", "metric": "errors",
        "window": "1m", "op": ">", "threshold": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(c.stop().await);

    let bad = rule.replace("window: 5m", "window: -5m");
    let text = config_text(llmscope::config::DEFAULT_CONFIG, &bad);
    let error = llmscope::config::Config::parse("bad", &text, &|_| None)
        .expect_err("a bad rule")
        .to_string();
    assert!(
        error.contains("extensions.alerts") && error.contains("rules[0].window"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rules_name_the_field_and_other_projects_rules_are_not_found() {
    const ADMIN: &str = "admin-token-0123456789";
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |t| {
        config_text(t, "    allow_private_targets: true\n")
            .replace(
                "extensions:\n",
                &format!("extensions:\n  auth:\n    admin_token: {ADMIN}\n"),
            )
            .replace("[api, alerts]", "[auth, api, alerts]")
    });
    let mut c = Collector::start_with(config, dir).await;
    c.api_headers = vec![("authorization".into(), format!("Bearer {ADMIN}"))];
    let mut keys = Vec::new();
    for project in ["p1", "p2"] {
        let (status, body) = api(
            &c,
            Method::POST,
            "/api/v1/keys",
            Some(&json!({"project": project, "name": "ci"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        keys.push(format!("Bearer {}", body["key"].as_str().expect("key")));
    }
    let as_key =
        |c: &mut Collector, k: &str| c.api_headers = vec![("authorization".into(), k.to_owned())];

    as_key(&mut c, &keys[0]);
    let good = json!({"name": "r", "metric": "errors", "window": "5m", "op": ">", "threshold": 1,
                      "notify": [{"type": "webhook", "url": "http://127.0.0.1:9/h", "secret": SECRET}]});
    let mut cases = vec![
        (json!({"metric": "tokens"}), "metric"),
        (json!({"window": "-5m"}), "window"),
        (json!({"threshold": "lots"}), "threshold"),
        (json!({"group_by": ["colour"]}), "group_by[0]"),
    ];
    let mut unsigned = good.clone();
    unsigned["notify"][0]
        .as_object_mut()
        .expect("channel")
        .remove("secret");
    cases.push((unsigned, "notify[0].secret"));
    for (change, field) in cases {
        let mut rule = good.clone();
        for (k, v) in change.as_object().expect("object") {
            rule[k] = v.clone();
        }
        let (status, body) = api(&c, Method::POST, "/api/v1/alert-rules", Some(&rule)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}: {body}");
        assert_eq!(body["field"], field, "{body}");
    }
    let reply = c
        .request(
            Method::POST,
            format!("http://{}/api/v1/alert-rules", c.api),
            &[("authorization", keys[0].as_str())],
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let id = create(&c, &good).await;
    let (_, mine) = api(&c, Method::GET, &format!("/api/v1/alert-rules/{id}"), None).await;
    assert_eq!(mine["project"], "p1");
    assert_eq!(mine["notify"][0]["secret_set"], true);
    assert!(!mine.to_string().contains("MfKQ9r8"), "{mine}");
    // An update without the secret keeps it.
    let mut update = good.clone();
    update["threshold"] = json!(5);
    update["notify"][0]
        .as_object_mut()
        .expect("channel")
        .remove("secret");
    let (status, updated) = api(
        &c,
        Method::PUT,
        &format!("/api/v1/alert-rules/{id}"),
        Some(&update),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["threshold"], 5.0);
    assert_eq!(updated["notify"][0]["secret_set"], true);
    // What a GET shows can be changed and sent back as it is.
    let mut round_trip = updated.clone();
    round_trip["threshold"] = json!(7);
    let (status, body) = api(
        &c,
        Method::PUT,
        &format!("/api/v1/alert-rules/{id}"),
        Some(&round_trip),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["threshold"].as_f64(),
            body["notify"][0]["secret_set"].as_bool()
        ),
        (Some(7.0), Some(true))
    );

    as_key(&mut c, &keys[1]);
    let path = format!("/api/v1/alert-rules/{id}");
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = api(&c, method.clone(), &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
    }
    let (status, _) = api(&c, Method::PUT, &path, Some(&good)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = api(&c, Method::GET, "/api/v1/alert-rules", None).await;
    assert_eq!(theirs["rules"], json!([]));

    c.api_headers = vec![("authorization".into(), format!("Bearer {ADMIN}"))];
    let (_, listed) = api(&c, Method::GET, "/api/v1/alert-rules?project=p1", None).await;
    assert_eq!(listed["rules"][0]["id"], id.as_str());
    let (status, _) = api(&c, Method::DELETE, &format!("{path}?project=p1"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api(&c, Method::GET, &format!("{path}?project=p1"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(c.stop().await);
}
