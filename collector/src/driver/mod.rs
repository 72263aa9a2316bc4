//! The exporter driver: the one loop that feeds an exporter from a queue [`Reader`], whichever
//! queue it is. It groups records into larger exports ([`batching`]), sends up to
//! `concurrency` of them at once, retries transient failures ([`retry`]), and moves the
//! reader's cursor past an export once it and every export before it are done (the memory
//! queue's commit does nothing). An export given up on goes to the reader's dead-letter file
//! with its reason (the memory queue has none: it is dropped), counted either way. A driver stops
//! once told to and nothing is left to read, or once its queue is closed and drained; what the
//! disk queue still holds then waits for the next start.

mod batching;
mod retry;
#[cfg(test)]
mod tests;

use llmscope_core::telemetry::metrics;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use futures_util::stream;
use llmscope_core::Exporter;
use llmscope_core::telemetry::Counter;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

pub use batching::BatchPolicy;
pub use retry::RetryPolicy;

use crate::queue::durable::DeadLetterError;
use crate::queue::{Letter, Reader};
use crate::telemetry::Telemetry;
use batching::{Groups, Work};

/// Everything about how one exporter is fed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delivery {
    pub retry: RetryPolicy,
    pub batching: BatchPolicy,
    /// Exports in flight at once, at least 1, across every queue feeding the exporter. With the
    /// disk queue, the cursor still moves in order: past an export only once every export
    /// before it is done.
    pub concurrency: usize,
}

/// What one exporter's drivers count.
pub struct Meters {
    pub id: String,
    telemetry: Telemetry,
    pub sent: Counter,
    pub retries: Counter,
    dead_lettered: Counter,
    undecodable: Counter,
}

impl Meters {
    fn new(id: String, telemetry: Telemetry) -> Self {
        let labels = [("exporter", id.as_str())];
        Self {
            sent: telemetry.counter(&metrics::EXPORTER_SENT_ITEMS, &labels),
            retries: telemetry.counter(&metrics::EXPORTER_RETRIES, &labels),
            dead_lettered: telemetry.counter(&metrics::EXPORTER_DEAD_LETTER_ITEMS, &labels),
            undecodable: telemetry.counter(&metrics::EXPORTER_UNDECODABLE_RECORDS, &labels),
            id,
            telemetry,
        }
    }

    fn dropped(&self, reason: &str, items: u64) {
        self.telemetry
            .counter(
                &metrics::EXPORTER_DROPPED_ITEMS,
                &[("exporter", &self.id), ("reason", reason)],
            )
            .add(items);
    }
}

/// Runs `exporter` over `reader` until `stop` is set (or the reader closes) and nothing is left
/// to read. `slots` holds the exporter's `concurrency` permits, shared by every driver of the
/// exporter (one per pipeline with the disk queue).
pub fn spawn<E: Exporter, R: Reader>(
    id: String,
    exporter: E,
    reader: R,
    delivery: Delivery,
    slots: Arc<Semaphore>,
    telemetry: Telemetry,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let meters = Meters::new(id, telemetry);
        // When each export read and not yet committed was received, oldest first.
        let unexported = Mutex::new(VecDeque::new());
        let reader = Arc::new(reader);
        let groups = Groups {
            reader: Arc::clone(&reader),
            policy: delivery.batching,
            stop,
            pending: VecDeque::new(),
        };
        let work = stream::unfold(groups, |mut groups| async move {
            let work = groups.next().await?;
            Some((work, groups))
        });
        let (exporter, meters, reader) = (&exporter, &meters, &*reader);
        let (unexported, slots) = (&unexported, &*slots);
        let concurrency = delivery.concurrency.max(1);
        work.map(|work| {
            let mut waiting = unexported.lock().unwrap_or_else(|p| p.into_inner());
            let received_at = match &work {
                Work::Export { received_at, .. } => Some(*received_at),
                Work::Undecodable { .. } => None,
            };
            if waiting.is_empty() {
                reader.mark_oldest(received_at);
            }
            waiting.push_back(received_at);
            async move {
                let end = work.end();
                match work {
                    Work::Export { batch, .. } => {
                        if let Err(gave_up) =
                            retry::deliver(exporter, &batch, &delivery.retry, slots, meters).await
                        {
                            give_up(reader, meters, Letter::Batch(&batch), &gave_up).await;
                        }
                    }
                    Work::Undecodable { bytes, error, .. } => {
                        meters.undecodable.add(1);
                        let letter = Letter::Undecodable {
                            bytes: &bytes,
                            error: &error,
                        };
                        match reader.dead_letter(letter, "undecodable queue record").await {
                            Ok(path) => {
                                tracing::error!(exporter = %meters.id, %error, file = %path.display(), "undecodable queue record written to the dead-letter file")
                            }
                            Err(write_error) => {
                                tracing::error!(exporter = %meters.id, %error, %write_error, "undecodable queue record dropped")
                            }
                        }
                    }
                }
                end
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
            reader.mark_oldest(waiting.iter().flatten().next().copied());
        })
        .await;
        tracing::debug!(exporter = %meters.id, "driver stopped");
    })
}

/// An export given up on: dead-lettered where the queue keeps a file, else dropped; counted.
async fn give_up<R: Reader>(
    reader: &R,
    meters: &Meters,
    letter: Letter<'_>,
    gave_up: &retry::GaveUp,
) {
    let items = match &letter {
        Letter::Batch(batch) => batch.payload.item_count(),
        Letter::Undecodable { .. } => 0,
    };
    let (error, reason) = (&gave_up.error, gave_up.reason());
    match reader.dead_letter(letter, &gave_up.explain()).await {
        Ok(path) => {
            tracing::error!(exporter = %meters.id, %error, items, reason, file = %path.display(), "export given up; batch written to the dead-letter file");
            meters.dead_lettered.add(items as u64);
        }
        Err(DeadLetterError::NoFile) => {
            tracing::error!(exporter = %meters.id, %error, items, reason, "export given up; batch dropped");
            meters.dropped(reason, items as u64);
        }
        Err(write_error) => {
            tracing::error!(exporter = %meters.id, %error, %write_error, items, reason, "export given up and not dead-lettered; batch dropped");
            let reason = match write_error {
                DeadLetterError::Full { .. } => "dead_letter_full",
                _ => reason,
            };
            meters.dropped(reason, items as u64);
        }
    }
}
