//! The exporter driver: the one place that takes batches off an exporter's queue, groups them
//! into larger exports (by items, bytes and time), sends up to `concurrency` of them at once,
//! retries transient failures with exponential backoff and full jitter (honouring
//! `retry_after`), and counts what was sent, retried, dead-lettered and dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use futures_util::stream;
use llmscope_core::telemetry::Counter;
use llmscope_core::{Batch, ExportError, Exporter, Payload};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::queue::durable::{DeadLetterError, LogReader, Record};
use crate::queue::segment_log::Position;
use crate::telemetry::Telemetry;

/// How failed exports are retried (`service.queue.retry`, or an exporter's `retry_on_failure`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per export, the first included; `None`: until it succeeds.
    pub max_attempts: Option<u32>,
}

/// How queued batches are grouped into one export: the first batch waits at most `max_delay`
/// for more of the same signal and project, until `max_items` items or `max_bytes` bytes
/// (protobuf size) are reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPolicy {
    pub max_items: usize,
    pub max_bytes: usize,
    pub max_delay: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        Self {
            max_items: 10_000,
            max_bytes: 8 * 1024 * 1024,
            max_delay: Duration::from_millis(200),
        }
    }
}

/// Everything about how one exporter is fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delivery {
    pub retry: RetryPolicy,
    pub batching: BatchPolicy,
    /// Exports in flight at once, at least 1. With the durable queue, the cursor still moves in
    /// order: past an export only once every export before it is done.
    pub concurrency: usize,
}

fn encoded_len(batch: &Batch) -> usize {
    use prost::Message;
    match &batch.payload {
        Payload::Traces(rs) => rs.iter().map(Message::encoded_len).sum(),
        Payload::Logs(rl) => rl.iter().map(Message::encoded_len).sum(),
        Payload::Metrics(rm) => rm.iter().map(Message::encoded_len).sum(),
    }
}

fn compatible(a: &Batch, b: &Batch) -> bool {
    std::mem::discriminant(&a.payload) == std::mem::discriminant(&b.payload)
        && a.ctx.project == b.ctx.project
}

/// Several batches of one signal and project as one: payloads and events concatenated. A batch
/// no one else holds is moved, not copied.
fn merge(group: Vec<Arc<Batch>>) -> Arc<Batch> {
    if group.len() == 1 {
        return group
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable!("one batch"));
    }
    let mut merged = Batch::new(
        match &group[0].payload {
            Payload::Traces(_) => Payload::Traces(Vec::new()),
            Payload::Logs(_) => Payload::Logs(Vec::new()),
            Payload::Metrics(_) => Payload::Metrics(Vec::new()),
        },
        group[0].ctx.clone(),
    );
    for b in group {
        let b = Arc::try_unwrap(b).unwrap_or_else(|shared| (*shared).clone());
        match (&mut merged.payload, b.payload) {
            (Payload::Traces(out), Payload::Traces(rs)) => out.extend(rs),
            (Payload::Logs(out), Payload::Logs(rl)) => out.extend(rl),
            (Payload::Metrics(out), Payload::Metrics(rm)) => out.extend(rm),
            _ => {}
        }
        merged.events.extend(b.events);
    }
    Arc::new(merged)
}

/// The next export: a queued batch and whatever compatible ones follow within the policy.
/// A batch that does not fit waits in `held` for the next call. `None` once the queue is closed
/// and empty.
async fn next_export(
    rx: &mut mpsc::Receiver<Arc<Batch>>,
    held: &mut Option<Arc<Batch>>,
    policy: &BatchPolicy,
) -> Option<Arc<Batch>> {
    let first = match held.take() {
        Some(b) => b,
        None => rx.recv().await?,
    };
    let deadline = Instant::now() + policy.max_delay;
    let mut items = first.payload.item_count();
    let mut bytes = encoded_len(&first);
    let mut group = vec![first];
    while items < policy.max_items && bytes < policy.max_bytes {
        let Ok(Some(next)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            break;
        };
        let (n, size) = (next.payload.item_count(), encoded_len(&next));
        if !compatible(&group[0], &next)
            || items + n > policy.max_items
            || bytes + size > policy.max_bytes
        {
            *held = Some(next);
            break;
        }
        items += n;
        bytes += size;
        group.push(next);
    }
    Some(merge(group))
}

/// What one exporter's driver counts.
struct Meters {
    id: String,
    telemetry: Telemetry,
    sent: Counter,
    retries: Counter,
}

impl Meters {
    fn new(id: String, telemetry: Telemetry) -> Self {
        let labels = [("exporter", id.as_str())];
        Self {
            sent: telemetry.counter("llmscope_exporter_sent_items_total", &labels),
            retries: telemetry.counter("llmscope_exporter_retries_total", &labels),
            id,
            telemetry,
        }
    }

    fn dropped(&self, reason: &str, items: u64) {
        self.telemetry
            .counter(
                "llmscope_exporter_dropped_items_total",
                &[("exporter", &self.id), ("reason", reason)],
            )
            .add(items);
    }
}

/// Why an export was given up.
struct GaveUp {
    error: ExportError,
    /// `true`: every attempt the policy allows failed; `false`: the backend refused it for good.
    exhausted: bool,
}

impl GaveUp {
    /// The `reason` label of the drop counter.
    fn reason(&self) -> &'static str {
        if self.exhausted {
            "retries_exhausted"
        } else {
            "permanent_error"
        }
    }

    /// What the dead-letter file says.
    fn explain(&self) -> String {
        if self.exhausted {
            format!("retries exhausted: {}", self.error)
        } else {
            self.error.to_string()
        }
    }
}

/// Sends `batch` until it is exported; gives up only when the backend refuses it for good or
/// the policy's attempts (if it has a limit) all failed.
async fn deliver<E: Exporter>(
    exporter: &E,
    batch: &Batch,
    policy: &RetryPolicy,
    meters: &Meters,
) -> Result<(), GaveUp> {
    let mut rng = Jitter::seeded();
    let mut attempt = 1;
    loop {
        let error = match exporter.export(batch).await {
            Ok(()) => {
                meters.sent.add(batch.payload.item_count() as u64);
                return Ok(());
            }
            Err(error) => error,
        };
        if !error.is_retryable() {
            return Err(GaveUp {
                error,
                exhausted: false,
            });
        }
        if policy.max_attempts.is_some_and(|max| attempt >= max) {
            return Err(GaveUp {
                error,
                exhausted: true,
            });
        }
        let wait = backoff(policy, attempt, &error, &mut rng);
        tracing::warn!(exporter = %meters.id, %error, attempt, ?wait, "export failed; retrying");
        meters.retries.add(1);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Runs `exporter` over its in-memory queue until every sender is gone and the queue is
/// drained. An export given up on is dropped, counted and logged.
pub fn spawn<E: Exporter>(
    id: String,
    exporter: E,
    rx: mpsc::Receiver<Arc<Batch>>,
    delivery: Delivery,
    telemetry: Telemetry,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let meters = Meters::new(id, telemetry);
        let exports = stream::unfold((rx, None), |(mut rx, mut held)| async move {
            let batch = next_export(&mut rx, &mut held, &delivery.batching).await?;
            Some((batch, (rx, held)))
        });
        let (exporter, meters) = (&exporter, &meters);
        exports
            .for_each_concurrent(delivery.concurrency.max(1), |batch| async move {
                if let Err(gave_up) = deliver(exporter, &batch, &delivery.retry, meters).await {
                    let (items, reason) = (batch.payload.item_count(), gave_up.reason());
                    tracing::error!(exporter = %meters.id, error = %gave_up.error, items, reason, "export failed; dropping batch");
                    meters.dropped(reason, items as u64);
                }
            })
            .await;
        exporter.shutdown().await;
        tracing::debug!(exporter = %meters.id, "exporter stopped");
    })
}

/// Records per read of the durable queue.
const READ_RECORDS: usize = 256;
/// How long an idle reader waits for data before it checks whether to stop.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Consecutive records of the durable queue grouped into exports, like [`next_export`] does
/// for the memory queue.
struct LogGroups {
    reader: Arc<LogReader>,
    policy: BatchPolicy,
    stop: watch::Receiver<bool>,
    /// Read, not yet in a group.
    pending: VecDeque<Record>,
}

/// One export read from the durable queue.
struct Group {
    batch: Arc<Batch>,
    /// Commit this once the export is done.
    end: Position,
    /// When the group's first batch was received.
    received_at: SystemTime,
}

impl LogGroups {
    /// Reads more records into `pending`, waiting up to `wait` for them. False when there were
    /// none (or the read failed, logged).
    async fn fill(&mut self, wait: Duration) -> bool {
        match self.reader.next(READ_RECORDS, wait).await {
            Ok(records) => {
                self.pending.extend(records);
                !self.pending.is_empty()
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
                false
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// The next export; `None` once stopping and nothing is left to read.
    async fn next(&mut self) -> Option<Group> {
        let first = loop {
            if let Some(record) = self.pending.pop_front() {
                break record;
            }
            if !self.fill(IDLE_WAIT).await && self.stopping() {
                return None;
            }
        };
        let (mut end, received_at) = (first.end, first.batch.ctx.received_at);
        let mut group = vec![Arc::new(first.batch)];
        if let Some(planned) = self.reader.replayed_end(end) {
            // The export in flight when the process last stopped: the same records again.
            while end < planned {
                let Some(next) = self.pending.front() else {
                    if self.stopping() || !self.fill(IDLE_WAIT).await {
                        break;
                    }
                    continue;
                };
                if next.end > planned {
                    break;
                }
                let Some(next) = self.pending.pop_front() else {
                    break;
                };
                end = next.end;
                group.push(Arc::new(next.batch));
            }
            return Some(Group {
                batch: merge(group),
                end,
                received_at,
            });
        }
        let deadline = Instant::now() + self.policy.max_delay;
        let (mut items, mut bytes) = (group[0].payload.item_count(), first.bytes);
        while items < self.policy.max_items && bytes < self.policy.max_bytes {
            let Some(next) = self.pending.front() else {
                let now = Instant::now();
                if self.stopping() || now >= deadline || !self.fill(deadline - now).await {
                    break;
                }
                continue;
            };
            let n = next.batch.payload.item_count();
            if !compatible(&group[0], &next.batch)
                || items + n > self.policy.max_items
                || bytes + next.bytes > self.policy.max_bytes
            {
                break;
            }
            let Some(next) = self.pending.pop_front() else {
                break;
            };
            items += n;
            bytes += next.bytes;
            end = next.end;
            group.push(Arc::new(next.batch));
        }
        self.reader.plan_export(end);
        Some(Group {
            batch: merge(group),
            end,
            received_at,
        })
    }
}

/// Runs `exporter` over its reader of a durable queue: groups what it reads like [`spawn`],
/// sends up to `concurrency` exports at once, and moves the reader's cursor past an export once
/// it and every export before it are done. Transient failures are retried (by default until
/// they succeed; the batch stays in the queue meanwhile, even across restarts). An export given
/// up on goes to the reader's dead-letter file with its reason, counted. Stops once `stop` is
/// set and nothing is left to read; what is not exported by then stays in the queue for the
/// next start.
pub fn spawn_log<E: Exporter>(
    id: String,
    exporter: E,
    reader: LogReader,
    delivery: Delivery,
    telemetry: Telemetry,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let meters = Meters::new(id, telemetry);
        let dead_lettered = meters.telemetry.counter(
            "llmscope_exporter_dead_letter_items_total",
            &[("exporter", &meters.id)],
        );
        // When each export read and not yet committed was received, oldest first.
        let unexported = Mutex::new(VecDeque::new());
        let reader = Arc::new(reader);
        let groups = LogGroups {
            reader: Arc::clone(&reader),
            policy: delivery.batching,
            stop,
            pending: VecDeque::new(),
        };
        let groups = stream::unfold(groups, |mut groups| async move {
            let group = groups.next().await?;
            Some((group, groups))
        });
        let (exporter, meters, reader) = (&exporter, &meters, &*reader);
        let (unexported, dead_lettered) = (&unexported, &dead_lettered);
        let concurrency = delivery.concurrency.max(1);
        groups
            .map(|group| {
                let mut waiting = unexported.lock().unwrap_or_else(|p| p.into_inner());
                if waiting.is_empty() {
                    reader.mark_oldest(Some(group.received_at));
                }
                waiting.push_back(group.received_at);
                async move {
                    let items = group.batch.payload.item_count();
                    let Err(gave_up) =
                        deliver(exporter, &group.batch, &delivery.retry, meters).await
                    else {
                        return group.end;
                    };
                    let (error, reason) = (&gave_up.error, gave_up.reason());
                    match reader.dead_letter(&group.batch, &gave_up.explain()).await {
                        Ok(path) => {
                            tracing::error!(exporter = %meters.id, %error, items, reason, file = %path.display(), "export given up; batch written to the dead-letter file");
                            dead_lettered.add(items as u64);
                        }
                        Err(write_error) => {
                            tracing::error!(exporter = %meters.id, %error, %write_error, items, reason, "export given up and not dead-lettered; batch dropped");
                            let reason = match write_error {
                                DeadLetterError::Full { .. } => "dead_letter_full",
                                DeadLetterError::Io(_) => reason,
                            };
                            meters.dropped(reason, items as u64);
                        }
                    }
                    group.end
                }
            })
            .buffered(concurrency)
            // Exports done together are committed together: one cursor write.
            .ready_chunks(concurrency)
            .for_each(|done| async move {
                let Some(&end) = done.last() else { return };
                if let Err(error) = reader.commit(end).await {
                    tracing::error!(exporter = %meters.id, %error, "cannot record the queue position");
                }
                let mut waiting = unexported.lock().unwrap_or_else(|p| p.into_inner());
                let passed = done.len().min(waiting.len());
                waiting.drain(..passed);
                reader.mark_oldest(waiting.front().copied());
            })
            .await;
        tracing::debug!(exporter = %meters.id, "exporter stopped");
    })
}

/// Full jitter: a uniform wait in `[0, min(max, initial * 2^(attempt-1))]`, but never less than
/// what the backend asked for.
fn backoff(policy: &RetryPolicy, attempt: u32, error: &ExportError, rng: &mut Jitter) -> Duration {
    let ceiling = policy
        .initial_backoff
        .saturating_mul(1u32 << (attempt - 1).min(20))
        .min(policy.max_backoff);
    let jittered = ceiling.mul_f64(rng.unit());
    match error {
        ExportError::Transient {
            retry_after: Some(after),
            ..
        } => jittered.max(*after),
        _ => jittered,
    }
}

/// xorshift64*: jitter needs spread, not cryptographic quality.
struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and a process-wide count, so exports retrying side by side
    /// spread apart.
    fn seeded() -> Self {
        static SEEDS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let n = SEEDS.fetch_add(1, Ordering::Relaxed);
        Self((nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use llmscope_core::test_util::{span, traces};

    use super::*;

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
        let handle = spawn("x".into(), exporter, rx, delivery(), telemetry.clone());
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
        let (tx, mut rx) = mpsc::channel(16);
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
        let mut held = None;
        let mut sizes = Vec::new();
        while let Some(b) = next_export(&mut rx, &mut held, &policy).await {
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

        let (queue, _) =
            DurableQueue::open(dir, Fsync::Never, 1 << 20, 1 << 24, WhenFull::Block).expect("open");
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
        let handle = spawn_log(
            "x".into(),
            exporter,
            reader,
            delivery,
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
        let handle = spawn_log(
            "x".into(),
            exporter.clone(),
            reader,
            delivery,
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
        let first = spawn_log(
            "x".into(),
            stuck.clone(),
            queue.reader("x"),
            delivery(),
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
        let sent =
            |t: &Telemetry| t.value("llmscope_exporter_sent_items_total", &[("exporter", "x")]);
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
        let sent =
            |t: &Telemetry| t.value("llmscope_exporter_sent_items_total", &[("exporter", "x")]);
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
}
