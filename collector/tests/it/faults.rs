//! Fault tests of the durable queue: against the real binary, what a client saw acknowledged
//! survives `kill -9` and is stored exactly once, and a damaged queue tail is cut, not fatal;
//! in process, a backend down for 30 seconds loses nothing and holds back no other exporter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmscope_core::otlp::trace::v1::Span;
use llmscope_core::test_util::kv;
use prost::Message;
use tokio::sync::watch;

use crate::harness::Collector;
use crate::process::Process;

const REQUESTS: usize = 200;
const SPANS_PER_REQUEST: usize = 500;

/// Request `n`: GenAI chat spans whose ids encode the request and the span's place in it.
fn request(n: usize, now_ns: u64) -> Vec<u8> {
    request_of(n, SPANS_PER_REQUEST, now_ns)
}

fn request_of(n: usize, spans: usize, now_ns: u64) -> Vec<u8> {
    let spans = (0..spans)
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
    llmscope_core::test_util::traces_request("faults", spans).encode_to_vec()
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
    stored_keyed(dir, None)
}

/// [`stored`] in a database encrypted with `key` (64 hex characters).
fn stored_keyed(dir: &std::path::Path, key: Option<&str>) -> (i64, i64) {
    let conn = rusqlite::Connection::open(Process::database(dir)).expect("database");
    if let Some(key) = key {
        conn.pragma_update(None, "key", format!("x'{key}'"))
            .expect("key");
    }
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

/// Every file under `dir`, recursively, by path.
fn files_under(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_queue_and_store_survive_kill_9_and_a_wrong_key_is_refused_untouched() {
    const KEY: &str = "4c4c4d53636f7065207175657565206b657920666f7220746865207465737421";
    const STORE_KEY: &str = "4c4c4d53636f70652073746f7265206b657920666f7220746865207465737421";
    let dir = tempfile::tempdir().expect("tempdir");
    let client = client();
    let now_ns = now_ns();
    let start_keyed = |key: &str, store_key: &str| {
        let mut command = crate::process::llmscope();
        command
            .current_dir(dir.path())
            .env("LLMSCOPE_OTLP_GRPC_ENDPOINT", "127.0.0.1:0")
            .env("LLMSCOPE_OTLP_HTTP_ENDPOINT", "127.0.0.1:0")
            .env("LLMSCOPE_API_ENDPOINT", "127.0.0.1:0")
            .env("LLMSCOPE_SQLITE_PATH", Process::database(dir.path()))
            .env("LLMSCOPE_QUEUE_DIR", dir.path().join("queue"))
            .env("LLMSCOPE_QUEUE_KEY", key)
            .env("LLMSCOPE_SQLITE_KEY", store_key)
            .env_remove("LLMSCOPE_CONFIG")
            .env_remove("RUST_LOG");
        command
    };
    let start = |key: &str| start_keyed(key, STORE_KEY);
    let first = Process::spawn(start(KEY));
    for n in 0..3 {
        let sent = post(&client, &first.http, request_of(n, 50, now_ns).into()).await;
        assert_eq!(sent, Some(200));
    }
    let (exit, logs) = first.stop("KILL").await;
    assert!(!exit.success(), "{logs}");

    let queue = dir.path().join("queue");
    let before = files_under(&queue);
    assert!(
        before
            .keys()
            .any(|p| p.extension().is_some_and(|e| e == "seg"))
    );
    let database = files_under(&dir.path().join("data"));
    assert!(
        database
            .keys()
            .any(|p| p.to_string_lossy().ends_with("-wal")),
        "the WAL is left after kill -9: {:?}",
        database.keys()
    );
    for (path, bytes) in before.iter().chain(&database) {
        for plain in [
            &b"faults"[..],
            b"chat gpt-4o",
            b"gen_ai.request.model",
            b"SQLite format 3",
        ] {
            assert!(
                !bytes.windows(plain.len()).any(|w| w == plain),
                "{} holds {}",
                path.display(),
                String::from_utf8_lossy(plain)
            );
        }
    }

    // Another key: a clear start-up error, and not one byte of the queue changed.
    let wrong = start(&"00".repeat(32)).output().expect("run");
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("another encryption key"), "{said}");
    assert!(
        !said.contains(KEY) && !said.contains(&"00".repeat(32)),
        "no key in logs: {said}"
    );
    assert_eq!(files_under(&queue), before);

    // Another key for the database: the same, and not one byte of it changed.
    let database = files_under(&dir.path().join("data"));
    let wrong = start_keyed(KEY, &"11".repeat(32)).output().expect("run");
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        said.contains("does not open with the configured encryption key"),
        "{said}"
    );
    assert!(
        !said.contains(STORE_KEY) && !said.contains(&"11".repeat(32)),
        "{said}"
    );
    assert!(
        files_under(&dir.path().join("data")) == database,
        "the database is untouched"
    );

    // The right key: everything acknowledged is stored, once (what was exported before the
    // kill is not sent again; the rest is drained on TERM).
    let second = Process::spawn(start(KEY));
    let (exit, logs) = second.stop("TERM").await;
    assert!(exit.success(), "{logs}");
    assert_eq!(stored_keyed(dir.path(), Some(STORE_KEY)), (150, 150));
}

/// A TCP proxy that can be taken down: while down it refuses new connections and cuts the ones
/// it carries, as a crashed backend would.
struct Proxy {
    addr: std::net::SocketAddr,
    up: watch::Sender<bool>,
}

impl Proxy {
    /// A proxy to the `http://host:port` of `url`.
    async fn start(url: &str) -> Self {
        let target = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (up, up_rx) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut up = up_rx.clone();
                if !*up.borrow() {
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

fn clickhouse_url() -> Option<String> {
    llmscope_core::test_util::service_url("LLMSCOPE_TEST_CLICKHOUSE_URL")
}

/// A traces pipeline exporting to `exporters` (of SQLite in `dir` and ClickHouse's `database`
/// through `proxy`, up to 4 exports in flight), with a disk queue in `dir` and `queue` settings
/// added.
fn behind_proxy(
    dir: &std::path::Path,
    proxy: &Proxy,
    database: &str,
    exporters: &str,
    queue: &str,
) -> llmscope::config::Config {
    let text = format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc: {{endpoint: 127.0.0.1:0}}\n      http: {{endpoint: 127.0.0.1:0}}\n\
         exporters:\n  sqlite: {{path: {db}}}\n  clickhouse: {{url: http://{proxy}, database: {database}, timeout: 5s, sending_queue: {{num_consumers: 4}}}}\n\
         extensions:\n  api: {{endpoint: 127.0.0.1:0, store: sqlite}}\n\
         service:\n  extensions: [api]\n  queue: {{kind: disk, dir: {queue_dir}{queue}}}\n  pipelines:\n\
         \x20   traces: {{receivers: [otlp], exporters: {exporters}}}\n",
        db = dir.join("llmscope.db").display(),
        proxy = proxy.addr,
        queue_dir = dir.join("queue").display(),
    );
    llmscope::config::Config::parse("faults.yaml", &text, &|_| None).expect("config")
}

/// `(rows, distinct spans)` in ClickHouse once it has at least `expected` distinct spans, or
/// after a minute.
async fn clickhouse_spans(url: &str, database: &str, expected: u64) -> (u64, u64) {
    let ch = clickhouse::Client::default()
        .with_url(url)
        .with_database(database);
    let mut stored = (0, 0);
    for _ in 0..600 {
        // The ClickHouse test double answers one query at a time and may refuse one while
        // other tests load it: a failed poll is polled again.
        match ch
            .query("SELECT count(), uniqExact(trace_id, span_id) FROM spans")
            .fetch_one::<(u64, u64)>()
            .await
        {
            Ok(counts) if counts.1 >= expected => return counts,
            Ok(counts) => stored = counts,
            Err(error) => eprintln!("polling ClickHouse: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stored
}

async fn drop_database(url: &str, database: &str) {
    let _ = clickhouse::Client::default()
        .with_url(url)
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_down_for_30_seconds_loses_nothing_and_holds_back_no_other_exporter() {
    let Some(url) = clickhouse_url() else { return };
    let proxy = Proxy::start(&url).await;
    let database = format!("llmscope_outage_{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = behind_proxy(dir.path(), &proxy, &database, "[sqlite, clickhouse]", "");
    let c = Collector::start_with(config, dir).await;

    // Load: one request of 100 spans every 50 ms until told to stop.
    let (stop_tx, stop_rx) = watch::channel(false);
    let http = c.http.to_string();
    let sender = tokio::spawn(async move {
        let client = client();
        let now_ns = now_ns();
        let mut n = 0;
        while !*stop_rx.borrow() {
            let body = bytes::Bytes::from(request_of(n, 100, now_ns));
            assert_eq!(post(&client, &http, body).await, Some(200), "request {n}");
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    });
    let sqlite_rows = |db: &std::path::Path| -> i64 {
        rusqlite::Connection::open(db)
            .expect("database")
            .query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))
            .expect("count")
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_up(false);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let early_in_outage = sqlite_rows(&c.db);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let late_in_outage = sqlite_rows(&c.db);
    assert!(
        late_in_outage >= early_in_outage + 10_000,
        "SQLite kept storing while ClickHouse was down: {early_in_outage} then {late_in_outage}"
    );
    assert!(
        c.telemetry().value(
            "llmscope_exporter_retries_total",
            &[("exporter", "clickhouse")]
        ) > 0
    );
    // `/readyz` tells how far behind each exporter is.
    let ready = c.get("/readyz").await.json();
    let clickhouse = &ready["queues"]["traces"]["exporters"]["clickhouse"];
    assert!(clickhouse["pending_bytes"].as_u64() > Some(0), "{ready}");
    assert!(clickhouse["retries"].as_u64() > Some(0), "{ready}");
    assert_eq!(clickhouse["dead_letter_items"], 0, "{ready}");
    assert!(
        clickhouse["oldest_unexported_age_seconds"].as_u64() >= Some(25),
        "{ready}"
    );
    assert!(
        ready["queues"]["traces"]["exporters"]["sqlite"]["oldest_unexported_age_seconds"].as_u64()
            <= Some(2),
        "{ready}"
    );
    proxy.set_up(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send_replace(true);
    let requests = sender.await.expect("sender");
    let expected = (requests * 100) as i64;

    // The backlog drains: every span once in ClickHouse, and in SQLite.
    let stored = clickhouse_spans(&url, &database, expected as u64).await;
    assert_eq!(
        stored,
        (expected as u64, expected as u64),
        "ClickHouse: (rows, distinct spans)"
    );
    assert_eq!(sqlite_rows(&c.db), expected);
    assert!(c.stop().await);
    drop_database(&url, &database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_retryably_and_recovers_with_its_backend() {
    let Some(url) = clickhouse_url() else { return };
    let proxy = Proxy::start(&url).await;
    let database = format!("llmscope_full_{}", std::process::id());
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = ", segment_bytes: 65536, max_bytes: 262144";
    let config = behind_proxy(dir.path(), &proxy, &database, "[clickhouse]", queue);
    let c = Collector::start_with(config, dir).await;
    proxy.set_up(false);

    let client = client();
    let now_ns = now_ns();
    let http = c.http.to_string();
    let mut acked = 0;
    let refused = loop {
        let body = bytes::Bytes::from(request_of(acked, 100, now_ns));
        match post(&client, &http, body.clone()).await {
            Some(200) => acked += 1,
            Some(503) => break body,
            other => panic!("request {acked}: {other:?}"),
        }
        assert!(acked < 1000, "the queue never filled");
    };
    assert!(acked > 0);
    assert_eq!(
        c.get("/healthz").await.status,
        200,
        "the process stays healthy"
    );
    assert!(
        c.telemetry().value(
            "llmscope_queue_dropped_records_total",
            &[("pipeline", "traces")]
        ) == 0
    );

    // The backend returns: the queue drains and the refused request goes in on a retry.
    proxy.set_up(true);
    let mut retries = 0;
    while post(&client, &http, refused.clone()).await != Some(200) {
        retries += 1;
        assert!(retries < 600, "the queue never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let expected = (acked as u64 + 1) * 100;
    let stored = clickhouse_spans(&url, &database, expected).await;
    assert_eq!(
        stored,
        (expected, expected),
        "ClickHouse: (rows, distinct spans)"
    );
    assert!(c.stop().await);
    drop_database(&url, &database).await;
}
