//! The hand-off from processors to exporters: a bounded queue per exporter behind the [`Queue`]
//! interface. This one is in memory; a durable, disk-backed one replaces it without touching
//! pipelines or exporters.

mod config;
pub mod durable;
pub mod segment_log;

pub use config::{
    DeliveryConfig, FsyncPolicy, MAX_CONSUMERS, QueueConfig, QueueKind, RetryConfig, RetryOverride,
    SendingQueue,
};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use llmscope_core::Batch;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PushError {
    #[error("the export queue is full; retry later")]
    Full,
    #[error("the collector is shutting down; retry later")]
    Closed,
    /// The durable queue could not write or sync the batch (a disk error).
    #[error("the export queue cannot store the batch; retry later")]
    Storage,
}

/// Where a pipeline puts processed batches. `push` resolves once the batch is queued for every
/// exporter of the pipeline, or not at all.
pub trait Queue: Send + Sync + 'static {
    fn push(&self, batch: Arc<Batch>) -> impl Future<Output = Result<(), PushError>> + Send;
}

/// Bounded in-memory channels, one per exporter of a pipeline.
pub struct MemoryQueue {
    exporters: Vec<mpsc::Sender<Arc<Batch>>>,
    /// How long a push waits for room before refusing.
    wait: Duration,
}

impl MemoryQueue {
    pub fn new(exporters: Vec<mpsc::Sender<Arc<Batch>>>, wait: Duration) -> Self {
        Self { exporters, wait }
    }
}

impl Queue for MemoryQueue {
    async fn push(&self, batch: Arc<Batch>) -> Result<(), PushError> {
        // Reserve room in every exporter's channel first, so a batch goes to all or to none.
        let reserve = async {
            let mut permits = Vec::with_capacity(self.exporters.len());
            for tx in &self.exporters {
                permits.push(tx.reserve().await.map_err(|_| PushError::Closed)?);
            }
            Ok(permits)
        };
        let permits = tokio::time::timeout(self.wait, reserve)
            .await
            .map_err(|_| PushError::Full)??;
        for permit in permits {
            permit.send(Arc::clone(&batch));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use llmscope_core::test_util::traces;

    use super::*;

    #[tokio::test]
    async fn a_full_exporter_refuses_the_batch_for_all_exporters() {
        let (fast_tx, mut fast_rx) = mpsc::channel(4);
        let (slow_tx, _slow_rx) = mpsc::channel(1);
        let queue = MemoryQueue::new(vec![fast_tx, slow_tx], Duration::from_millis(20));
        let batch = Arc::new(traces("svc", vec![]));
        queue.push(Arc::clone(&batch)).await.expect("room");
        assert_eq!(queue.push(batch).await, Err(PushError::Full));
        assert!(fast_rx.try_recv().is_ok());
        assert!(
            fast_rx.try_recv().is_err(),
            "the refused batch reached no exporter"
        );
    }
}
