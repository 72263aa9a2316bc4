//! The `llmscope` binary: runs the built-in default, stops gracefully on SIGTERM having
//! flushed what it accepted, and its `validate` and `migrate` subcommands.

use llmscope_core::test_util::fixtures;

use futures_util::StreamExt as _;

use crate::process::{Process, llmscope};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_what_was_accepted_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let running = Process::start(dir.path());
    let http = running.http.clone();

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = hyper::Request::post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            fixtures::OPENINFERENCE_OPENAI_CHAT,
        )))
        .expect("request");
    let response = client.request(request).await.expect("response");
    assert_eq!(response.status(), 200);

    let (exit, logs) = running.stop("TERM").await;
    assert!(exit.success(), "exit {exit:?}; logs:\n{logs}");
    assert!(logs.contains("stopped cleanly"), "{logs}");

    let conn = rusqlite::Connection::open(Process::database(dir.path())).expect("database");
    let spans: i64 = conn
        .query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))
        .expect("count");
    assert_eq!(spans, 3, "every accepted span was flushed before exit");
}

#[test]
fn validate_lists_every_problem_and_exits_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "receivers:\n  otlp:\n    protocol: {}\nexporters:\n  kafka:\nservice:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [sqlite]}\n",
    )
    .expect("write");
    let out = llmscope()
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 problems"), "{stderr}");
    assert!(
        stderr.contains("receivers.otlp.protocol: unknown field `protocol`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exporters.kafka: unknown exporter type \"kafka\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("service.pipelines.traces.exporters[0]: \"sqlite\" is not defined"),
        "{stderr}"
    );

    let good = llmscope()
        .arg("validate")
        .env_remove("LLMSCOPE_CONFIG")
        .output()
        .expect("run");
    assert!(good.status.success());
    assert!(String::from_utf8_lossy(&good.stdout).contains("built-in default config is valid"));
}

#[test]
fn migrate_creates_the_schema_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db/llmscope.db");
    let run = || {
        llmscope()
            .arg("migrate")
            .env_remove("LLMSCOPE_CONFIG")
            .env("LLMSCOPE_SQLITE_PATH", &db)
            .output()
            .expect("run")
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&first.stdout),
        "sqlite: applied 0001_init, 0002_anomalies, 0003_metadata, 0004_record_ids, 0005_summaries, 0006_one_span_key_index, 0007_alert_state, 0008_events, 0009_trace_list_keys, 0010_rollup_parts, 0011_resources\n"
    );
    let second = run();
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "sqlite: schema is up to date\n"
    );
}

#[test]
fn keys_are_created_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys/llmscope.db");
    let run = |args: &[&str]| {
        llmscope()
            .args(args)
            .env_remove("LLMSCOPE_CONFIG")
            .env("LLMSCOPE_SQLITE_PATH", &db)
            .output()
            .expect("run")
    };
    let created = run(&["keys", "create", "--project", "team-a", "--name", "ci"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    assert!(key.starts_with("lls_"), "{key}");
    let listed = String::from_utf8_lossy(&run(&["keys", "list"]).stdout).to_string();
    let row = listed.lines().nth(1).expect("one key").to_owned();
    assert!(
        row.contains("team-a") && row.contains("ci") && !row.contains(&key),
        "{row}"
    );
    let id = row.split('\t').next().expect("id").to_owned();
    let revoked = run(&["keys", "revoke", &id]);
    assert!(revoked.status.success());
    let listed =
        String::from_utf8_lossy(&run(&["keys", "list", "--project", "team-a"]).stdout).to_string();
    assert!(
        !listed.lines().nth(1).expect("row").ends_with("\t-"),
        "revoked time shown: {listed}"
    );
    assert!(!run(&["keys", "revoke", "key_nope"]).status.success());
}

#[test]
fn alert_rules_are_created_listed_tested_and_deleted_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("alerts/llmscope.db");
    let run = |args: &[&str], stdin: &str| {
        use std::io::Write as _;
        let mut child = llmscope()
            .args(args)
            .env_remove("LLMSCOPE_CONFIG")
            .env("LLMSCOPE_SQLITE_PATH", &db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("stdin");
        drop(input);
        child.wait_with_output().expect("output")
    };
    let rule = r#"{"name": "budget", "metric": "cost_usd", "group_by": ["user"], "window": "1h",
                   "op": ">", "threshold": 1.0, "notify": [{"type": "webhook",
                   "url": "https://hooks.example.com/llm", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]}"#;
    let created = run(
        &["alerts", "create", "--project", "team-a", "--file", "-"],
        rule,
    );
    let out = String::from_utf8_lossy(&created.stdout).to_string();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(
        out.contains("\"secret_set\": true") && !out.contains("MfKQ9r8"),
        "{out}"
    );
    let id = serde_json::from_str::<serde_json::Value>(&out).expect("JSON")["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let listed = String::from_utf8_lossy(&run(&["alerts", "list"], "").stdout).to_string();
    let row = listed.lines().nth(1).expect("one rule").to_owned();
    assert_eq!(row, format!("{id}\tteam-a\tbudget\tcost_usd\tapi\ttrue"));

    let tested = run(&["alerts", "test", &id], "");
    assert!(
        tested.status.success(),
        "{}",
        String::from_utf8_lossy(&tested.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&tested.stdout).expect("JSON");
    assert_eq!(result["rule"], id.as_str());
    assert_eq!(
        result["series"],
        serde_json::json!([]),
        "no calls, no users"
    );

    let bad = run(
        &["alerts", "create", "--file", "-"],
        r#"{"name": "x", "metric": "tokens"}"#,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("metric"));
    let private = rule.replace("https://hooks.example.com/llm", "http://169.254.169.254/");
    let refused = run(&["alerts", "create", "--file", "-"], &private);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("allow_private_targets"));

    assert!(run(&["alerts", "delete", &id], "").status.success());
    let listed = String::from_utf8_lossy(&run(&["alerts", "list"], "").stdout).to_string();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(!run(&["alerts", "delete", &id], "").status.success());
}

#[test]
fn validate_accepts_write_only_exporters_and_refuses_an_api_on_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("write-only.yaml");
    let pipelines =
        "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [nop, debug]}\n";
    let receivers =
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n";
    std::fs::write(
        &file,
        format!("{receivers}exporters:\n  nop:\n  debug:\n    verbosity: detailed\n{pipelines}"),
    )
    .expect("write");
    let out = llmscope()
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        &file,
        format!(
            "{receivers}exporters:\n  nop:\n  debug:\n    verbosity: loud\n\
             extensions:\n  api:\n    store: nop\n{pipelines}  extensions: [api]\n"
        ),
    )
    .expect("write");
    let out = llmscope()
        .args(["validate", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exporters.debug.verbosity: unknown variant `loud`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("extensions.api.store: \"nop\" answers no queries"),
        "{stderr}"
    );
}

/// Threads and open descriptors of process `pid`.
#[cfg(target_os = "linux")]
fn threads_and_fds(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (threads, fds)
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_keys_leaves_threads_and_descriptors_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../otel-config/gateway.yaml");
    let running = Process::start_with(
        dir.path(),
        Some(&gateway),
        &[("LLMSCOPE_ADMIN_TOKEN", "an-admin-token-for-tests")],
    );
    let pid = running.pid();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let http = running.http.clone();
    // The baseline once one bad key went through: threads started lazily on the first lookup
    // (the blocking pool's first) are not the flood's.
    let warm_up = hyper::Request::post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/json")
        .header("authorization", "Bearer lls_warmup")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .expect("request");
    let _ = client.request(warm_up).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (threads_before, _) = threads_and_fds(pid);
    // 256 distinct bad keys, 64 at a time: each costs a store lookup (no cache hit).
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = std::sync::Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut peak = (0, 0);
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                let (t, f) = threads_and_fds(pid);
                peak = (peak.0.max(t), peak.1.max(f));
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let requests = (0..256).map(|i| {
        let client = client.clone();
        let http = http.clone();
        async move {
            let request = hyper::Request::post(format!("http://{http}/v1/traces"))
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer lls_flood{i:040}"))
                .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
                .expect("request");
            client
                .request(request)
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    });
    let statuses: Vec<u16> = futures_util::stream::iter(requests)
        .buffer_unordered(64)
        .collect()
        .await;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (peak_threads, peak_fds) = sampler.await.expect("sampler");
    assert!(statuses.iter().all(|s| *s == 401), "every bad key refused");
    // Lookups queue on a few permits instead of a blocking thread each; connections are capped.
    assert!(
        peak_threads <= threads_before + 16,
        "threads {threads_before} -> {peak_threads}"
    );
    assert!(peak_fds < 300, "descriptors peaked at {peak_fds}");
    let (exit, logs) = running.stop("TERM").await;
    assert!(exit.success(), "{logs}");
    assert!(
        logs.matches("an unknown or revoked API key was refused")
            .count()
            <= 2,
        "failures logged once per burst"
    );
}
