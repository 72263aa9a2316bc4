//! Retrying one export: exponential backoff with full jitter, never shorter than what the
//! backend asked for, until it succeeds, is refused for good, or the policy's attempts run out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llmscope_core::{Batch, ExportError, Exporter};
use tokio::sync::Semaphore;

use super::Meters;

/// How failed exports are retried (`service.queue.retry`, or an exporter's `retry_on_failure`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts per export, the first included; `None`: until it succeeds.
    pub max_attempts: Option<u32>,
}

/// Why an export was given up.
pub struct GaveUp {
    pub error: ExportError,
    /// `true`: every attempt the policy allows failed; `false`: the backend refused it for good.
    pub exhausted: bool,
}

impl GaveUp {
    /// The `reason` label of the drop counter.
    pub fn reason(&self) -> &'static str {
        if self.exhausted {
            "retries_exhausted"
        } else {
            "permanent_error"
        }
    }

    /// What the dead-letter file says.
    pub fn explain(&self) -> String {
        if self.exhausted {
            format!("retries exhausted: {}", self.error)
        } else {
            self.error.to_string()
        }
    }
}

/// Sends `batch` until it is exported; gives up only when the backend refuses it for good or
/// the policy's attempts (if it has a limit) all failed. Each attempt holds one of the
/// exporter's `slots` (`sending_queue.num_consumers`, shared by every queue feeding it); the
/// wait between attempts holds none.
pub async fn deliver<E: Exporter>(
    exporter: &E,
    batch: &Batch,
    policy: &RetryPolicy,
    slots: &Semaphore,
    meters: &Meters,
) -> Result<(), GaveUp> {
    let mut rng = Jitter::seeded();
    let mut attempt = 1;
    loop {
        let result = {
            let _slot = slots.acquire().await;
            exporter.export(batch).await
        };
        let error = match result {
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

/// Full jitter: a uniform wait in `[0, min(max, initial * 2^(attempt-1))]`, but never less than
/// what the backend asked for.
pub fn backoff(
    policy: &RetryPolicy,
    attempt: u32,
    error: &ExportError,
    rng: &mut Jitter,
) -> Duration {
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
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and a process-wide count, so exports retrying side by side
    /// spread apart.
    pub fn seeded() -> Self {
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
