//! Fault tests of the durable queue against the real binary: what a client saw acknowledged
//! survives `kill -9` and is stored exactly once; a damaged queue tail is cut, not fatal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::otlp::resource::v1::Resource;
use llmscope_core::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use llmscope_core::test_util::kv;
use prost::Message;
use tokio::sync::watch;

use crate::process::Process;

const REQUESTS: usize = 200;
const SPANS_PER_REQUEST: usize = 500;

/// Request `n`: GenAI chat spans whose ids encode the request and the span's place in it.
fn request(n: usize, now_ns: u64) -> Vec<u8> {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&(n as u64 + 1).to_be_bytes());
            let mut span_id = [0u8; 8];
            span_id[4..].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                name: "chat gpt-4o".into(),
                kind: 3,
                start_time_unix_nano: now_ns,
                end_time_unix_nano: now_ns + 400_000_000,
                attributes: vec![
                    kv("gen_ai.operation.name", "chat"),
                    kv("gen_ai.system", "openai"),
                    kv("gen_ai.request.model", "gpt-4o"),
                ],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "faults")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
    .encode_to_vec()
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

fn client() -> Client {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// Posts OTLP/protobuf traces; the status, or `None` when the collector cannot be reached.
async fn post(client: &Client, addr: &str, body: bytes::Bytes) -> Option<u16> {
    let request = hyper::Request::post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(http_body_util::Full::new(body))
        .expect("request");
    client
        .request(request)
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// `(rows, distinct spans)` stored from this file's requests.
fn stored(dir: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(Process::database(dir)).expect("database");
    conn.query_row(
        "SELECT COUNT(*), COUNT(DISTINCT trace_id || span_id) FROM spans WHERE service = 'faults'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_and_duplicates_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = Process::start(dir.path());
    let (addr_tx, addr_rx) = watch::channel(first.http.clone());
    let acked = Arc::new(AtomicUsize::new(0));

    // The client: every request is retried until acknowledged, as an OTLP exporter would.
    let client = client();
    let now_ns = now_ns();
    let sender = tokio::spawn({
        let acked = Arc::clone(&acked);
        async move {
            let mut failures = 0;
            for n in 0..REQUESTS {
                let body = bytes::Bytes::from(request(n, now_ns));
                loop {
                    let addr = addr_rx.borrow().clone();
                    if post(&client, &addr, body.clone()).await == Some(200) {
                        break;
                    }
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                acked.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }
    });

    // Kill the collector mid-stream, with batches acknowledged but not yet all exported.
    while acked.load(Ordering::SeqCst) < REQUESTS / 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (exit, logs) = first.stop("KILL").await;
    assert!(!exit.success(), "killed, not exited: {logs}");
    assert!(
        acked.load(Ordering::SeqCst) < REQUESTS,
        "the kill came while the client was still sending"
    );

    let second = Process::start(dir.path());
    addr_tx.send_replace(second.http.clone());
    let failures = tokio::time::timeout(Duration::from_secs(600), sender)
        .await
        .expect("the client finished")
        .expect("client task");
    assert!(
        failures > 0,
        "some requests met the dead collector and were retried"
    );
    let (exit, logs) = second.stop("TERM").await;
    assert!(exit.success(), "exit {exit:?}; logs:\n{logs}");

    let (rows, distinct) = stored(dir.path());
    let expected = (REQUESTS * SPANS_PER_REQUEST) as i64;
    assert_eq!(distinct, expected, "every acknowledged span is stored");
    assert_eq!(rows, expected, "none is stored twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_queue_tail_is_cut_at_start_and_the_queue_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = client();
    let now_ns = now_ns();
    let first = Process::start(dir.path());
    let sent = post(&client, &first.http, request(0, now_ns).into()).await;
    assert_eq!(sent, Some(200));
    let (exit, logs) = first.stop("TERM").await;
    assert!(exit.success(), "{logs}");

    // A crash mid-write: half a record at the end of the traces segment.
    let segment = dir.path().join("queue/traces/00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&segment, bytes).expect("write");

    let second = Process::start(dir.path());
    let sent = post(&client, &second.http, request(1, now_ns).into()).await;
    assert_eq!(sent, Some(200), "the queue appends after the cut");
    let (exit, logs) = second.stop("TERM").await;
    assert!(exit.success(), "{logs}");
    assert!(
        logs.contains("cut a torn queue tail") && logs.contains("truncated_bytes=7"),
        "the cut is reported: {logs}"
    );
    let expected = 2 * SPANS_PER_REQUEST as i64;
    assert_eq!(stored(dir.path()), (expected, expected));
}
