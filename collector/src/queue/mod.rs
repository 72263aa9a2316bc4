//! The hand-off from processors to exporters. Pipelines push into a [`Queue`]; each exporter's
//! driver takes from a [`Reader`]. Two kinds stand behind both: bounded channels in memory
//! ([`MemoryQueue`], [`MemoryReader`], whose commit does nothing) and the durable disk queue
//! ([`durable`]), where each exporter reads with its own persisted cursor.

mod config;
pub mod durable;
pub mod seal;
pub mod segment_log;

pub use config::{
    DeliveryConfig, FsyncPolicy, MAX_CONSUMERS, QueueConfig, QueueKind, RetryConfig, RetryOverride,
    SendingQueue,
};

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use llmscope_core::Batch;
use tokio::sync::mpsc;

use self::durable::DeadLetterError;
use self::segment_log::{LogError, Position};

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

/// What a reader read: a batch, or bytes that no longer decode as one (written by a version of
/// LLMScope whose record format this one does not know).
pub enum Content {
    Batch(Arc<Batch>),
    Undecodable { bytes: Vec<u8>, error: String },
}

/// One record read from a queue.
pub struct Record {
    /// Where the queue stands after this record: commit it once the batch is exported.
    pub end: Position,
    pub content: Content,
    /// Its size as stored (protobuf size in memory).
    pub bytes: usize,
}

/// What a dead-letter file keeps.
pub enum Letter<'a> {
    Batch(&'a Batch),
    Undecodable { bytes: &'a [u8], error: &'a str },
}

/// One exporter's side of a queue, as its driver uses it.
pub trait Reader: Send + Sync + 'static {
    /// Up to `max` records after the last ones returned; waits up to `wait` when there is none.
    fn next(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Record>, LogError>> + Send;

    /// True once nothing more can ever be read (every pipeline feeding a memory queue is gone).
    fn closed(&self) -> bool;

    /// Marks everything up to `to` exported.
    fn commit(&self, to: Position) -> impl Future<Output = Result<(), LogError>> + Send;

    /// Records that an export ending at `end` is about to be sent (so that a restart re-sends
    /// the same export).
    fn plan_export(&self, _end: Position) {}

    /// Where the next export must end to be the one in flight when the process last stopped.
    fn replayed_end(&self, _first: Position) -> Option<Position> {
        None
    }

    /// When the oldest batch read and not yet exported was received (`None`: none waits).
    fn mark_oldest(&self, _received: Option<SystemTime>) {}

    /// Keeps what was given up on in the dead-letter file; returns the file.
    fn dead_letter(
        &self,
        letter: Letter<'_>,
        reason: &str,
    ) -> impl Future<Output = Result<PathBuf, DeadLetterError>> + Send;
}

/// One exporter's channel of the memory queue. Nothing survives the process, so committing does
/// nothing and there is no dead-letter file (a batch given up on is dropped, counted).
pub struct MemoryReader {
    rx: tokio::sync::Mutex<mpsc::Receiver<Arc<Batch>>>,
    closed: AtomicBool,
    read: AtomicU64,
}

impl MemoryReader {
    pub fn new(rx: mpsc::Receiver<Arc<Batch>>) -> Self {
        Self {
            rx: tokio::sync::Mutex::new(rx),
            closed: AtomicBool::new(false),
            read: AtomicU64::new(0),
        }
    }
}

impl Reader for MemoryReader {
    /// One batch at a time: the channel's bound is the queue's, nothing is held beyond it.
    async fn next(&self, _max: usize, wait: Duration) -> Result<Vec<Record>, LogError> {
        let mut rx = self.rx.lock().await;
        let batch = match rx.try_recv() {
            Ok(batch) => batch,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.closed.store(true, Ordering::Release);
                return Ok(Vec::new());
            }
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout(wait, rx.recv()).await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => {
                        self.closed.store(true, Ordering::Release);
                        return Ok(Vec::new());
                    }
                    Err(_) => return Ok(Vec::new()),
                }
            }
        };
        let n = self.read.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(vec![Record {
            end: Position {
                segment: 0,
                offset: n,
            },
            bytes: encoded_len(&batch),
            content: Content::Batch(batch),
        }])
    }

    fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    async fn commit(&self, _to: Position) -> Result<(), LogError> {
        Ok(())
    }

    async fn dead_letter(&self, _: Letter<'_>, _: &str) -> Result<PathBuf, DeadLetterError> {
        Err(DeadLetterError::NoFile)
    }
}

/// A batch's payload size as protobuf.
pub fn encoded_len(batch: &Batch) -> usize {
    use llmscope_core::Payload;
    use prost::Message;
    match &batch.payload {
        Payload::Traces(rs) => rs.iter().map(Message::encoded_len).sum(),
        Payload::Logs(rl) => rl.iter().map(Message::encoded_len).sum(),
        Payload::Metrics(rm) => rm.iter().map(Message::encoded_len).sum(),
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
