//! The driver over both queue kinds.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use llmscope_core::test_util::{span, traces};
use llmscope_core::{Batch, ExportError, Exporter};
use tokio::sync::{Semaphore, mpsc};

use super::batching::Groups;
use super::retry::{Jitter, backoff};
use super::*;
use crate::queue::MemoryReader;
use crate::queue::durable::LogReader;

/// Fails transiently `failures` times, then succeeds; or always fails permanently.
struct Flaky {
    failures: u32,
    permanent: bool,
    calls: Arc<AtomicU32>,
}

impl Exporter for Flaky {
    async fn export(&self, _batch: &Batch) -> Result<(), ExportError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.permanent {
            Err(ExportError::permanent("bad batch"))
        } else if n < self.failures {
            Err(ExportError::transient("busy"))
        } else {
            Ok(())
        }
    }
}

fn slots(n: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(n))
}

fn delivery() -> Delivery {
    Delivery {
        retry: RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_attempts: Some(4),
        },
        batching: BatchPolicy::default(),
        concurrency: 1,
    }
}

async fn run(failures: u32, permanent: bool) -> (u32, Telemetry) {
    let calls = Arc::new(AtomicU32::new(0));
    let telemetry = Telemetry::default();
    let (tx, rx) = mpsc::channel(1);
    let exporter = Flaky {
        failures,
        permanent,
        calls: Arc::clone(&calls),
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = spawn(
        "x".into(),
        exporter,
        MemoryReader::new(rx),
        delivery(),
        slots(1),
        telemetry.clone(),
        stop,
    );
    let batch = traces(
        "svc",
        vec![span(1, 1, "a", vec![]), span(1, 2, "b", vec![])],
    );
    tx.send(Arc::new(batch)).await.expect("send");
    drop(tx);
    handle.await.expect("driver");
    (calls.load(Ordering::SeqCst), telemetry)
}

#[tokio::test]
async fn transient_failures_are_retried_until_success() {
    let (calls, t) = run(2, false).await;
    assert_eq!(calls, 3);
    assert_eq!(
        t.value("llmscope_exporter_sent_items_total", &[("exporter", "x")]),
        2
    );
    assert_eq!(
        t.value("llmscope_exporter_retries_total", &[("exporter", "x")]),
        2
    );
}

#[tokio::test]
async fn permanent_failures_and_exhausted_retries_are_dropped_and_counted() {
    let (calls, t) = run(0, true).await;
    assert_eq!(calls, 1);
    let dropped = |reason| {
        t.value(
            "llmscope_exporter_dropped_items_total",
            &[("exporter", "x"), ("reason", reason)],
        )
    };
    assert_eq!(dropped("permanent_error"), 2);
    let (calls, t2) = run(100, false).await;
    assert_eq!(calls, 4);
    assert_eq!(
        t2.value(
            "llmscope_exporter_dropped_items_total",
            &[("exporter", "x"), ("reason", "retries_exhausted")]
        ),
        2
    );
}

#[tokio::test]
async fn a_batch_refused_for_good_goes_to_the_dead_letter_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = queue_of(dir.path(), 1, 2).await;
    let exporter = Flaky {
        failures: 0,
        permanent: true,
        calls: Arc::new(AtomicU32::new(0)),
    };
    let reader = queue.reader("clickhouse/main");
    drive(
        exporter,
        reader,
        delivery(),
        "the batch is dead-lettered",
        |t| dead_letters(t) == 2,
    )
    .await;
    assert_eq!(
        queue.log().pending_bytes("clickhouse%2Fmain"),
        0,
        "the batch is passed"
    );

    let text = std::fs::read_to_string(dir.path().join("dead-letter-clickhouse%2Fmain.jsonl"))
        .expect("dead-letter file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1);
    let letter = &lines[0];
    assert_eq!(letter["reason"], "permanent export error: bad batch");
    assert_eq!(letter["project"], "team-a");
    assert_eq!(letter["signal"], "traces");
    assert_eq!(letter["items"], 2);
    // The request is OTLP/JSON, ready to be posted again.
    let request: llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest =
        serde_json::from_value(letter["request"].clone()).expect("OTLP/JSON");
    let spans = &request.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1].span_id, vec![2; 8]);
}

#[tokio::test]
async fn queued_batches_are_grouped_by_signal_project_and_limits() {
    let (tx, rx) = mpsc::channel(16);
    let traces_of = |n: u8| {
        Arc::new(traces(
            "svc",
            (0..n).map(|i| span(1, i + 1, "a", vec![])).collect(),
        ))
    };
    let logs = Arc::new(llmscope_core::test_util::logs(
        "svc",
        vec![Default::default()],
    ));
    for b in [traces_of(2), traces_of(3), logs, traces_of(4), traces_of(5)] {
        tx.send(b).await.expect("send");
    }
    drop(tx);
    let policy = BatchPolicy {
        max_items: 8,
        max_bytes: usize::MAX,
        max_delay: Duration::from_millis(50),
    };
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut groups = Groups {
        reader: Arc::new(MemoryReader::new(rx)),
        policy,
        stop,
        pending: Default::default(),
    };
    let mut sizes = Vec::new();
    while let Some(work) = groups.next().await {
        let super::batching::Work::Export { batch: b, .. } = work else {
            panic!("only batches were queued");
        };
        sizes.push((b.payload.signal(), b.payload.item_count()));
    }
    assert_eq!(
        sizes,
        vec![("traces", 5), ("logs", 1), ("traces", 4), ("traces", 5)]
    );
}

/// Records each export's item count; holds the first export until `release` is notified
/// (the others take 5 ms); tracks how many exports run at once.
#[derive(Clone, Default)]
struct Gated {
    exported: Arc<std::sync::Mutex<Vec<usize>>>,
    release: Arc<tokio::sync::Notify>,
    calls: Arc<AtomicU32>,
    in_flight: Arc<AtomicU32>,
    most_in_flight: Arc<AtomicU32>,
}

impl Exporter for Gated {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            self.release.notified().await;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.exported
            .lock()
            .expect("lock")
            .push(batch.payload.item_count());
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A durable queue in `dir` holding `batches` batches of `spans` spans each.
async fn queue_of(
    dir: &std::path::Path,
    batches: usize,
    spans: u8,
) -> Arc<crate::queue::durable::DurableQueue> {
    use crate::queue::Queue as _;
    use crate::queue::durable::{DurableHandle, DurableQueue, Fsync};
    use crate::queue::segment_log::WhenFull;

    let (queue, _) = DurableQueue::open(dir, Fsync::Never, 1 << 20, 1 << 24, WhenFull::Block, None)
        .expect("open");
    let handle = DurableHandle(Arc::clone(&queue));
    for _ in 0..batches {
        let mut batch = traces(
            "svc",
            (0..spans).map(|i| span(1, i + 1, "a", vec![])).collect(),
        );
        batch.ctx.project = "team-a".into();
        handle.push(Arc::new(batch)).await.expect("push");
    }
    queue
}

/// Runs `exporter` over `reader` until `done` holds of the driver's counters, then stops
/// the driver and waits for it.
async fn drive<E: Exporter>(
    exporter: E,
    reader: LogReader,
    delivery: Delivery,
    what: &str,
    done: impl Fn(&Telemetry) -> bool,
) -> Telemetry {
    let telemetry = Telemetry::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let handle = spawn(
        "x".into(),
        exporter,
        reader,
        delivery,
        slots(delivery.concurrency),
        telemetry.clone(),
        stop,
    );
    until(what, || done(&telemetry)).await;
    stop_tx.send_replace(true);
    handle.await.expect("driver");
    telemetry
}

fn dead_letters(telemetry: &Telemetry) -> u64 {
    telemetry.value(
        "llmscope_exporter_dead_letter_items_total",
        &[("exporter", "x")],
    )
}

async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn exports_run_side_by_side_but_the_cursor_passes_only_finished_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = queue_of(dir.path(), 8, 2).await;
    let reader = queue.reader("x");
    let all = queue.log().pending_bytes("x");
    let exporter = Gated::default();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut delivery = delivery();
    delivery.batching.max_items = 1; // one batch per export
    delivery.concurrency = 3;
    let handle = spawn(
        "x".into(),
        exporter.clone(),
        reader,
        delivery,
        slots(3),
        Telemetry::default(),
        stop,
    );
    // The first export hangs; the two beside it finish. No more start: the window of
    // exports in flight begins at the oldest one not done (memory stays bounded).
    let exported = || exporter.exported.lock().expect("lock").len();
    until("the exports beside the held one finish", || exported() == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(exported(), 2);
    assert_eq!(
        queue.log().pending_bytes("x"),
        all,
        "nothing is committed while the first export is in flight"
    );
    exporter.release.notify_one();
    until("every batch is exported", || exported() == 8).await;
    until("the cursor reaches the end", || {
        queue.log().pending_bytes("x") == 0
    })
    .await;
    stop_tx.send_replace(true);
    handle.await.expect("driver");
    assert_eq!(exporter.most_in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(exporter.calls.load(Ordering::SeqCst), 8, "each batch once");
}

#[tokio::test]
async fn an_export_in_flight_at_a_crash_is_sent_again_as_the_same_export() {
    use crate::queue::Queue as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let queue = queue_of(dir.path(), 3, 2).await;
    // The first run's export of the three batches hangs; then the process "dies".
    let stuck = Gated::default();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let first = spawn(
        "x".into(),
        stuck.clone(),
        queue.reader("x"),
        delivery(),
        slots(1),
        Telemetry::default(),
        stop,
    );
    until("the export is in flight", || {
        stuck.calls.load(Ordering::SeqCst) == 1
    })
    .await;
    first.abort();
    let _ = first.await;
    // More arrives before the restart; the export in flight is re-sent as it was.
    let handle = crate::queue::durable::DurableHandle(Arc::clone(&queue));
    for _ in 0..3 {
        let mut batch = traces(
            "svc",
            vec![span(2, 1, "a", vec![]), span(2, 2, "b", vec![])],
        );
        batch.ctx.project = "team-a".into();
        handle.push(Arc::new(batch)).await.expect("push");
    }
    let exporter = Gated::default();
    exporter.release.notify_one();
    let sent = |t: &Telemetry| t.value("llmscope_exporter_sent_items_total", &[("exporter", "x")]);
    drive(
        exporter.clone(),
        queue.reader("x"),
        delivery(),
        "every batch is exported",
        |t| sent(t) == 12,
    )
    .await;
    assert_eq!(*exporter.exported.lock().expect("lock"), [6, 6]);
    assert_eq!(
        std::fs::metadata(dir.path().join("plan-x"))
            .expect("plan")
            .len(),
        0,
        "the plan is emptied once its exports are committed"
    );
}

#[tokio::test]
async fn queued_records_are_grouped_by_bytes_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = queue_of(dir.path(), 6, 2).await;
    let record = (queue.log().pending_bytes("x") / 6) as usize;
    let exporter = Gated::default();
    exporter.release.notify_one();
    let mut delivery = delivery();
    // Room for two records and a half, whatever the item count.
    delivery.batching.max_bytes = record * 5 / 2;
    let sent = |t: &Telemetry| t.value("llmscope_exporter_sent_items_total", &[("exporter", "x")]);
    drive(
        exporter.clone(),
        queue.reader("x"),
        delivery,
        "every batch is exported",
        |t| sent(t) == 12,
    )
    .await;
    assert_eq!(*exporter.exported.lock().expect("lock"), [4, 4, 4]);
}

#[tokio::test]
async fn a_full_dead_letter_file_takes_no_more_and_the_drop_is_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = queue_of(dir.path(), 3, 2).await;
    // Room for the first letter (about 1,050 bytes), not for the next.
    queue.limit_dead_letters(1500);
    let exporter = Flaky {
        failures: 0,
        permanent: true,
        calls: Arc::new(AtomicU32::new(0)),
    };
    let mut delivery = delivery();
    delivery.batching.max_items = 1; // one batch per export
    let full = |t: &Telemetry| {
        t.value(
            "llmscope_exporter_dropped_items_total",
            &[("exporter", "x"), ("reason", "dead_letter_full")],
        )
    };
    let telemetry = drive(
        exporter,
        queue.reader("x"),
        delivery,
        "the letters are handled",
        |t| dead_letters(t) + full(t) == 6,
    )
    .await;
    assert_eq!((dead_letters(&telemetry), full(&telemetry)), (2, 4));
    let text =
        std::fs::read_to_string(dir.path().join("dead-letter-x.jsonl")).expect("dead letters");
    assert_eq!(text.lines().count(), 1);
    assert!(text.len() <= 1500);
    assert_eq!(queue.log().pending_bytes("x"), 0, "nothing is stuck");
}

#[tokio::test]
async fn a_batch_whose_retries_run_out_goes_to_the_dead_letter_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = queue_of(dir.path(), 1, 2).await;
    let calls = Arc::new(AtomicU32::new(0));
    let exporter = Flaky {
        failures: u32::MAX,
        permanent: false,
        calls: Arc::clone(&calls),
    };
    drive(
        exporter,
        queue.reader("x"),
        delivery(),
        "the batch is dead-lettered",
        |t| dead_letters(t) == 2,
    )
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 4, "max_attempts");
    let text =
        std::fs::read_to_string(dir.path().join("dead-letter-x.jsonl")).expect("dead letters");
    assert!(
        text.contains(r#""reason":"retries exhausted: transient export error: busy""#),
        "{text}"
    );
}

#[test]
fn backoff_grows_is_capped_and_honours_retry_after() {
    let p = crate::queue::RetryConfig::default().policy();
    let mut rng = Jitter::seeded();
    let busy = ExportError::transient("busy");
    for attempt in 1..30 {
        assert!(backoff(&p, attempt, &busy, &mut rng) <= p.max_backoff);
    }
    let told = ExportError::Transient {
        message: "slow down".into(),
        retry_after: Some(Duration::from_secs(7)),
    };
    assert!(backoff(&p, 1, &told, &mut rng) >= Duration::from_secs(7));
}

#[tokio::test]
async fn an_undecodable_record_is_dead_lettered_counted_and_passed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let queue = queue_of(dir.path(), 1, 2).await;
    // A record whose checksum is good but whose bytes are no batch (a format this version does
    // not know), last in the queue.
    queue.log().append(b"\xff\xff not a batch").expect("append");
    let exporter = Gated::default();
    exporter.release.notify_one();
    let undecodable = |t: &Telemetry| {
        t.value(
            "llmscope_exporter_undecodable_records_total",
            &[("exporter", "x")],
        )
    };
    let sent = |t: &Telemetry| t.value("llmscope_exporter_sent_items_total", &[("exporter", "x")]);
    drive(
        exporter,
        queue.reader("x"),
        delivery(),
        "the good batch is sent and the bad record handled",
        |t| sent(t) == 2 && undecodable(t) == 1,
    )
    .await;
    assert_eq!(queue.log().pending_bytes("x"), 0, "the cursor passed it");
    let text =
        std::fs::read_to_string(dir.path().join("dead-letter-x.jsonl")).expect("dead letters");
    let letter: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(letter["record_hex"], hex::encode(b"\xff\xff not a batch"));
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("undecodable queue record: ")),
        "{letter}"
    );
}
