//! The exporter driver: the one place that takes batches off an exporter's queue, groups them
//! into larger exports (by items, bytes and time), calls the exporter, retries transient
//! failures with exponential backoff and full jitter (honouring `retry_after`), and counts what
//! was sent and what was dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmscope_core::{Batch, ExportError, Exporter, Payload};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::telemetry::Telemetry;

/// How failed exports are retried (from `service.queue.retry`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per batch, the first included. The in-memory queue cannot keep a batch forever;
    /// the durable queue retries without end.
    pub max_attempts: u32,
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

/// Several batches of one signal and project as one: payloads and events concatenated.
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
    for b in &group {
        match (&mut merged.payload, &b.payload) {
            (Payload::Traces(out), Payload::Traces(rs)) => out.extend(rs.iter().cloned()),
            (Payload::Logs(out), Payload::Logs(rl)) => out.extend(rl.iter().cloned()),
            (Payload::Metrics(out), Payload::Metrics(rm)) => out.extend(rm.iter().cloned()),
            _ => {}
        }
        merged.events.extend(b.events.iter().cloned());
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
    let deadline = tokio::time::Instant::now() + policy.max_delay;
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

/// Runs `exporter` over its queue until every sender is gone and the queue is drained.
pub fn spawn<E: Exporter>(
    id: String,
    exporter: E,
    mut rx: mpsc::Receiver<Arc<Batch>>,
    (policy, batching): (RetryPolicy, BatchPolicy),
    telemetry: Telemetry,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let labels = [("exporter", id.as_str())];
        let sent = telemetry.counter("llmscope_exporter_sent_items_total", &labels);
        let retries = telemetry.counter("llmscope_exporter_retries_total", &labels);
        let mut rng = Jitter::seeded();
        let mut held = None;
        while let Some(batch) = next_export(&mut rx, &mut held, &batching).await {
            let items = batch.payload.item_count() as u64;
            let mut attempt = 1;
            loop {
                match exporter.export(&batch).await {
                    Ok(()) => {
                        sent.add(items);
                        break;
                    }
                    Err(error) if error.is_retryable() && attempt < policy.max_attempts => {
                        let wait = backoff(&policy, attempt, &error, &mut rng);
                        tracing::warn!(exporter = %id, %error, attempt, ?wait, "export failed; retrying");
                        retries.add(1);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    Err(error) => {
                        let reason = if error.is_retryable() {
                            "retries_exhausted"
                        } else {
                            "permanent_error"
                        };
                        tracing::error!(exporter = %id, %error, items, reason, "export failed; dropping batch");
                        telemetry
                            .counter(
                                "llmscope_exporter_dropped_items_total",
                                &[("exporter", &id), ("reason", reason)],
                            )
                            .add(items);
                        break;
                    }
                }
            }
        }
        exporter.shutdown().await;
        tracing::debug!(exporter = %id, "exporter stopped");
    })
}

/// Runs `exporter` over its reader of a durable queue: groups what it reads like [`spawn`],
/// commits each export's position once it succeeded, and retries transient failures until they
/// succeed (the batch stays in the queue meanwhile, even across restarts). A batch refused for
/// good goes to the reader's dead-letter file, counted. Stops once `stop` is set and nothing is
/// left to read; what is not exported by then stays in the queue for the next start.
pub fn spawn_log<E: Exporter>(
    id: String,
    exporter: E,
    reader: crate::queue::durable::LogReader,
    (policy, batching): (RetryPolicy, BatchPolicy),
    telemetry: Telemetry,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let labels = [("exporter", id.as_str())];
        let sent = telemetry.counter("llmscope_exporter_sent_items_total", &labels);
        let retries = telemetry.counter("llmscope_exporter_retries_total", &labels);
        let dead_lettered = telemetry.counter("llmscope_exporter_dead_letter_items_total", &labels);
        let mut rng = Jitter::seeded();
        loop {
            let records = match reader.next(256, Duration::from_millis(100)).await {
                Ok(r) => r,
                Err(error) => {
                    tracing::error!(exporter = %id, %error, "cannot read the queue");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if records.is_empty() {
                if *stop.borrow() {
                    break;
                }
                continue;
            }
            // Consecutive compatible batches within the limits become one export.
            let mut groups: Vec<(crate::queue::segment_log::Position, Vec<Arc<Batch>>, usize)> =
                Vec::new();
            for (pos, batch) in records {
                let n = batch.payload.item_count();
                match groups.last_mut() {
                    Some((last, group, items))
                        if compatible(&group[0], &batch) && *items + n <= batching.max_items =>
                    {
                        *last = pos;
                        *items += n;
                        group.push(Arc::new(batch));
                    }
                    _ => groups.push((pos, vec![Arc::new(batch)], n)),
                }
            }
            for (pos, group, items) in groups {
                reader.mark_oldest(Some(group[0].ctx.received_at));
                let batch = merge(group);
                let mut attempt = 1;
                loop {
                    match exporter.export(&batch).await {
                        Ok(()) => {
                            sent.add(items as u64);
                            break;
                        }
                        Err(error) if error.is_retryable() => {
                            let wait = backoff(
                                &policy,
                                attempt.min(policy.max_attempts),
                                &error,
                                &mut rng,
                            );
                            tracing::warn!(exporter = %id, %error, attempt, ?wait, "export failed; retrying");
                            retries.add(1);
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                        }
                        Err(error) => {
                            match reader.dead_letter(&batch, &error.to_string()).await {
                                Ok(path) => {
                                    tracing::error!(exporter = %id, %error, items, file = %path.display(), "export refused; batch written to the dead-letter file");
                                    dead_lettered.add(items as u64);
                                }
                                Err(write_error) => {
                                    tracing::error!(exporter = %id, %error, %write_error, items, "export refused and the dead-letter file cannot be written; batch dropped");
                                    telemetry
                                        .counter(
                                            "llmscope_exporter_dropped_items_total",
                                            &[("exporter", &id), ("reason", "permanent_error")],
                                        )
                                        .add(items as u64);
                                }
                            }
                            break;
                        }
                    }
                }
                if let Err(error) = reader.commit(pos).await {
                    tracing::error!(exporter = %id, %error, "cannot record the queue position");
                }
            }
            reader.mark_oldest(None);
        }
        tracing::debug!(exporter = %id, "exporter stopped");
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
    fn seeded() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self(nanos | 1)
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

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            max_attempts: 4,
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
        let handle = spawn(
            "x".into(),
            exporter,
            rx,
            (policy(), BatchPolicy::default()),
            telemetry.clone(),
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
        use crate::queue::Queue as _;
        use crate::queue::durable::{DurableHandle, DurableQueue, Fsync};
        use crate::queue::segment_log::WhenFull;

        let dir = tempfile::tempdir().expect("tempdir");
        let (queue, _) =
            DurableQueue::open(dir.path(), Fsync::Never, 1 << 20, 1 << 24, WhenFull::Block)
                .expect("open");
        let reader = queue.reader("clickhouse/main");
        let mut batch = traces(
            "svc",
            vec![span(1, 1, "a", vec![]), span(1, 2, "b", vec![])],
        );
        batch.ctx.project = "team-a".into();
        DurableHandle(Arc::clone(&queue))
            .push(Arc::new(batch))
            .await
            .expect("push");
        let telemetry = Telemetry::default();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let exporter = Flaky {
            failures: 0,
            permanent: true,
            calls: Arc::new(AtomicU32::new(0)),
        };
        let policy = (policy(), BatchPolicy::default());
        let handle = spawn_log(
            "x".into(),
            exporter,
            reader,
            policy,
            telemetry.clone(),
            stop,
        );
        let counted = || {
            telemetry.value(
                "llmscope_exporter_dead_letter_items_total",
                &[("exporter", "x")],
            )
        };
        for _ in 0..100 {
            if counted() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop_tx.send_replace(true);
        handle.await.expect("driver");
        assert_eq!(counted(), 2);
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
