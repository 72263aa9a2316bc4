//! The exporter driver: the one place that takes batches off an exporter's queue, calls the
//! exporter, retries transient failures with exponential backoff and full jitter (honouring
//! `retry_after`), and counts what was sent and what was dropped.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmscope_core::{Batch, ExportError, Exporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::telemetry::Telemetry;

/// How failed exports are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per batch, the first included. The in-memory queue cannot keep a batch forever;
    /// the durable queue will retry indefinitely.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_attempts: 8,
        }
    }
}

/// Runs `exporter` over its queue until every sender is gone and the queue is drained.
pub fn spawn<E: Exporter>(
    id: String,
    exporter: E,
    mut rx: mpsc::Receiver<Arc<Batch>>,
    policy: RetryPolicy,
    telemetry: Telemetry,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let labels = [("exporter", id.as_str())];
        let sent = telemetry.counter("llmscope_exporter_sent_items_total", &labels);
        let retries = telemetry.counter("llmscope_exporter_retries_total", &labels);
        let mut rng = Jitter::seeded();
        while let Some(batch) = rx.recv().await {
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
        let handle = spawn("x".into(), exporter, rx, policy(), telemetry.clone());
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

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy::default();
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
