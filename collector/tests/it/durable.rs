//! The durable queue in the running collector: data flows through it, a restart exports what a
//! previous run left in it, and a torn tail is cut at start with every valid record kept.

use std::io::Write;
use std::sync::Arc;

use hyper::StatusCode;
use llmscope::config::Config;
use llmscope::queue::Queue;
use llmscope::queue::durable::{DurableHandle, DurableQueue, Fsync};
use llmscope::queue::segment_log::WhenFull;
use llmscope_core::test_util::fixtures;

use crate::harness::Collector;

fn config(dir: &std::path::Path) -> Config {
    let db = dir.join("data/llmscope.db").display().to_string();
    let queue = dir.join("queue").display().to_string();
    Config::parse(
        "durable.yaml",
        llmscope::config::DEFAULT_CONFIG,
        &|var| match var {
            "LLMSCOPE_SQLITE_PATH" => Some(db.clone()),
            "LLMSCOPE_QUEUE_DIR" => Some(queue.clone()),
            v if v.ends_with("_ENDPOINT") => Some("127.0.0.1:0".into()),
            _ => None,
        },
    )
    .expect("durable config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_flow_through_the_durable_queue_and_its_cursor_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start_with(config(dir.path()), tempfile::tempdir().expect("tempdir")).await;
    let reply = c
        .post_otlp(
            "/v1/traces",
            &[("content-type", "application/json")],
            fixtures::OPENLLMETRY_OPENAI_CHAT.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    c.eventually("/api/v1/traces", |l| l["traces"][0]["span_count"] == 3)
        .await;
    assert!(c.stop().await);
    let cursor = std::fs::read_to_string(dir.path().join("queue/traces/cursor-sqlite"))
        .expect("cursor persisted");
    assert!(!cursor.trim().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_exports_what_was_left_and_cuts_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue_dir = dir.path().join("queue/traces");
    {
        // A previous run accepted a batch (on disk, acknowledged) but died before exporting it,
        // in the middle of writing the next one.
        let (queue, _) = DurableQueue::open(
            &queue_dir,
            Fsync::Always,
            64 << 20,
            1 << 30,
            WhenFull::Block,
            None,
        )
        .expect("queue");
        let mut batch = fixtures::traces_batch(fixtures::OPENINFERENCE_OPENAI_CHAT);
        // The queue holds processed batches.
        llmscope_core::Processor::process(
            &mut llmscope_processors::normalize::Normalize::default(),
            &mut batch,
        )
        .expect("normalize");
        DurableHandle(queue)
            .push(Arc::new(batch))
            .await
            .expect("appended");
    }
    let mut segment = std::fs::OpenOptions::new()
        .append(true)
        .open(queue_dir.join(format!("{:020}.seg", 0)))
        .expect("segment");
    segment
        .write_all(&[200, 0, 0, 0, 9, 9, 9])
        .expect("torn write");
    drop(segment);

    let c = Collector::start_with(config(dir.path()), tempfile::tempdir().expect("tempdir")).await;
    let list = c
        .eventually("/api/v1/traces", |l| l["traces"][0]["span_count"] == 3)
        .await;
    assert_eq!(
        list["traces"][0]["llm_calls"], 2,
        "the batch left in the queue was exported"
    );
    assert_eq!(
        c.telemetry().value(
            "llmscope_queue_truncated_bytes_total",
            &[("pipeline", "traces")]
        ),
        7
    );
    assert!(c.stop().await);
}

#[tokio::test]
async fn start_up_errors_name_the_queue_and_the_tls_they_are_about() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::harness::default_config_with(&dir, str::to_owned);
    // The queue's folder cannot be made: a file is in the way.
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    std::fs::write(dir.path().join("data/llmscope.db.queue"), b"a file").expect("file");
    let error = llmscope::service::Service::start(&config)
        .await
        .err()
        .expect("the queue cannot open")
        .to_string();
    assert!(error.starts_with("queue of pipeline "), "{error}");
    assert!(error.contains("llmscope.db.queue"), "{error}");

    // Certificate files that were there when the config was checked, and are gone at start.
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = tls_files(&dir);
    let missing = cert.display().to_string();
    let config = crate::harness::default_config_with(&dir, |text| {
        text.replace(
            "endpoint: ${env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}",
            &format!(
                "endpoint: ${{env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}}\n        tls: {{cert_file: {missing}, key_file: {}}}",
                key.display()
            ),
        )
    });
    std::fs::remove_file(&cert).expect("remove");
    let error = llmscope::service::Service::start(&config)
        .await
        .err()
        .expect("no certificate")
        .to_string();
    assert!(
        error.starts_with("receivers.otlp.protocols.http: TLS: "),
        "{error}"
    );
}

fn tls_files(dir: &tempfile::TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    (cert, key)
}

#[cfg(unix)]
#[tokio::test]
async fn what_the_collector_creates_is_its_owners_alone() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::harness::default_config_with(&dir, str::to_owned);
    let service = llmscope::service::Service::start(&config)
        .await
        .expect("starts");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    let db = dir.path().join("data/llmscope.db");
    assert_eq!(mode(&db), 0o600, "the database");
    let queue = dir.path().join("data/llmscope.db.queue/traces");
    assert_eq!(mode(&queue), 0o700, "the queue folder");
    assert!(service.shutdown(std::time::Duration::from_secs(5)).await);
}

/// `llmscope dead-letters FILE` prints an encrypted queue's letters in plain text with the
/// queue's key, and refuses without it or with another, never quoting a key.
#[test]
fn dead_letters_of_an_encrypted_queue_are_printed_with_its_key_only() {
    use llmscope::queue::seal::{Sealer, seal_letter};

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dead-letter-sqlite.jsonl");
    let sealer = Sealer::from_hex(KEY).expect("key");
    let letter =
        br#"{"reason":"refused","request":{"resourceSpans":[{"name":"jane.doe@example.com"}]}}"#;
    let mut text = seal_letter(&sealer, letter);
    text.push(b'\n');
    text.extend_from_slice(br#"{"reason":"written before encryption"}"#);
    text.push(b'\n');
    std::fs::write(&file, &text).expect("write");
    assert!(!text.windows(8).any(|w| w == b"jane.doe"));

    let run = |key: Option<&str>| {
        let mut command = crate::process::llmscope();
        command
            .arg("dead-letters")
            .arg(&file)
            .env_remove("LLMSCOPE_CONFIG")
            .env_remove("LLMSCOPE_QUEUE_KEY");
        if let Some(key) = key {
            command.env("LLMSCOPE_QUEUE_KEY", key);
        }
        command.output().expect("run")
    };
    let out = run(Some(KEY));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        [
            std::str::from_utf8(letter).expect("utf-8"),
            r#"{"reason":"written before encryption"}"#
        ]
    );

    let other = "ff".repeat(32);
    for (key, says) in [
        (
            Some(other.as_str()),
            "line 1: cannot be opened with this key",
        ),
        (None, "line 1: sealed; set service.queue.encryption_key"),
    ] {
        let out = run(key);
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{said}");
        assert!(!said.contains(KEY) && !said.contains(&other), "{said}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("jane.doe"));
    }
}
