//! Two collectors (real processes) share PostgreSQL and Redis and evaluate the same flapping
//! rule for a minute while the evaluator is killed: every transition is written once and
//! delivered once.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::alerts::{Call, Receiver, SECRET, calls};
use crate::process::Process;

const RUN: Duration = Duration::from_secs(60);
/// Errors for this long, then successes for as long: the rule fires and resolves each cycle.
const PHASE: Duration = Duration::from_secs(4);

/// A new, empty database on the server of `url`; its URL.
pub(crate) async fn fresh_database(url: &str, name: &str) -> String {
    let (admin, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    let database = format!("llmscope_test_{name}_{}", std::process::id());
    for statement in [
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        format!("CREATE DATABASE {database}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .expect("fresh database");
    }
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    format!("{base}/{database}")
}

fn config(database: &str, redis: &str, lease_key: &str, hook: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${{env:LLMSCOPE_OTLP_GRPC_ENDPOINT}}
      http:
        endpoint: ${{env:LLMSCOPE_OTLP_HTTP_ENDPOINT}}
processors:
  normalize:
exporters:
  postgres:
    url: {database}
extensions:
  alerts:
    store: postgres
    query_store: postgres
    evaluation_interval: 1s
    redis_url: {redis}
    lease_key: {lease_key}
    lease_duration: 3s
    allow_private_targets: true
    delivery:
      initial_interval: 300ms
      max_interval: 2s
    rules:
      - name: flapping
        metric: errors
        group_by: [model]
        window: 2s
        op: ">"
        threshold: 0
        notify:
          - type: webhook
            url: {hook}
            secret: {SECRET}
service:
  extensions: [alerts]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [normalize]
      exporters: [postgres]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_deliver_every_transition_once_while_the_evaluator_is_killed() {
    let Some(pg) = llmscope_core::test_util::service_url("LLMSCOPE_TEST_POSTGRES_URL") else {
        return;
    };
    let Some(redis) = llmscope_core::test_util::service_url("LLMSCOPE_TEST_REDIS_URL") else {
        return;
    };
    let database = fresh_database(&pg, "alerts_failover").await;
    let hook = Receiver::start().await;
    let lease_key = format!("llmscope-test:alerts:{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let config_file = dir.path().join("config.yaml");
    std::fs::write(
        &config_file,
        config(&database, &redis, &lease_key, &hook.url("/hook")),
    )
    .expect("config");
    let start = |name: &str| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).expect("dir");
        Process::start_with(&home, Some(&config_file), &[])
    };
    let mut running = vec![start("a"), start("b")];
    let mut logs = Vec::new();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();

    let began = Instant::now();
    let mut killed = [false, false];
    let mut restarted = false;
    let mut sent = 0usize;
    while began.elapsed() < RUN {
        let t = began.elapsed();
        // Kill the first collector at 20 s (start a replacement at 25 s), the second at 40 s:
        // whichever leads, the evaluator is killed at least once.
        if t >= Duration::from_secs(20) && !killed[0] {
            killed[0] = true;
            logs.push(running.remove(0).stop("KILL").await.1);
        }
        if t >= Duration::from_secs(25) && !restarted {
            restarted = true;
            running.push(start("c"));
        }
        if t >= Duration::from_secs(40) && !killed[1] {
            killed[1] = true;
            logs.push(running.remove(0).stop("KILL").await.1);
        }
        let failing = (t.as_millis() / PHASE.as_millis()).is_multiple_of(2);
        let call = if failing {
            Call::failed("model-x")
        } else {
            Call::ok("model-x")
        };
        let target = &running[sent % running.len()];
        let request = Request::post(format!("http://{}/v1/traces", target.http))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(calls("svc", &[call]))))
            .expect("request");
        let reply = client.request(request).await.expect("collector answers");
        assert!(reply.status().is_success(), "{}", reply.status());
        sent += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Let the last cycle resolve and every notification go out.
    let (db, connection) = tokio_postgres::connect(&database, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pending: i64 = db
            .query_one(
                "SELECT count(*) FROM alert_notifications WHERE done_at_ns IS NULL",
                &[],
            )
            .await
            .expect("pending")
            .get(0);
        let last: Option<String> = db
            .query_opt(
                "SELECT state FROM alert_events WHERE state IN ('firing', 'resolved') ORDER BY id DESC LIMIT 1",
                &[],
            )
            .await
            .expect("last")
            .map(|r| r.get(0));
        if pending == 0 && last.as_deref() == Some("resolved") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} notifications still pending"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for p in running {
        logs.push(p.stop("TERM").await.1);
    }

    // Transitions alternate: never fired twice without resolving in between.
    let transitions = db
        .query(
            "SELECT state, token, series FROM alert_events WHERE state IN ('firing', 'resolved', 'pending', 'ok') ORDER BY id",
            &[],
        )
        .await
        .expect("transitions");
    let states: Vec<String> = transitions.iter().map(|r| r.get(0)).collect();
    let notified: Vec<&String> = states
        .iter()
        .filter(|s| *s == "firing" || *s == "resolved")
        .collect();
    assert!(notified.len() >= 8, "too few cycles: {states:?}");
    for pair in notified.windows(2) {
        assert_ne!(pair[0], pair[1], "a repeated transition in {states:?}");
    }
    let tokens: HashSet<i64> = transitions.iter().map(|r| r.get(1)).collect();
    assert!(
        tokens.len() >= 2,
        "the evaluator never changed: tokens {tokens:?}"
    );

    // Each notifying transition has one notification, delivered exactly once, signed.
    let rows = db
        .query(
            "SELECT n.webhook_id, e.state FROM alert_notifications n JOIN alert_events e ON e.id = n.event_id ORDER BY n.id",
            &[],
        )
        .await
        .expect("notifications");
    assert_eq!(rows.len(), notified.len());
    let expected: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let received = hook.received("/hook");
    let mut seen = BTreeMap::new();
    for r in &received {
        assert!(r.signed_with(SECRET));
        let kind = r.json()["type"].as_str().expect("type").to_owned();
        *seen.entry(r.header("webhook-id").to_owned()).or_insert(0) += 1;
        let state = expected
            .get(r.header("webhook-id"))
            .expect("a known notification");
        assert_eq!(kind, format!("alert.{state}"));
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "every notification arrived"
    );
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "delivered more than once: {repeated:?}"
    );
    let leaders = logs
        .iter()
        .map(|l| l.matches("is now the alert evaluator").count())
        .sum::<usize>();
    assert!(leaders >= 2, "leader changes logged: {leaders}");

    drop(db);
    if let Ok((admin, connection)) = tokio_postgres::connect(&pg, tokio_postgres::NoTls).await {
        tokio::spawn(connection);
        let name = database.rsplit('/').next().unwrap_or_default();
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
    if let Ok(mut conn) = redis::Client::open(redis.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
    {
        let _: Result<i64, _> = redis::cmd("DEL")
            .arg(format!("{lease_key}:leader"))
            .arg(format!("{lease_key}:token"))
            .query_async(&mut conn)
            .await;
    }
}
