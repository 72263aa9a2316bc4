use std::future::Future;
use std::time::Duration;

use crate::Batch;

/// A pipeline stage that inspects and rewrites batches in memory.
pub trait Processor: Send + 'static {
    /// Mutates the batch in place; may add records (e.g. anomaly events) to it. Must not block or
    /// do I/O; lookup data (prices, baselines) is refreshed elsewhere.
    fn process(&mut self, batch: &mut Batch) -> Result<(), ProcessError>;
}

/// A processor refused or failed on a batch.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The batch cannot be processed safely and must not continue down the pipeline.
    #[error("{processor}: {reason}")]
    Refused {
        processor: &'static str,
        reason: String,
    },
}

/// A destination for batches: a database, another collector.
pub trait Exporter: Send + Sync + 'static {
    /// One write to the backend. Must time out. Transient errors are retried by the driver.
    fn export(&self, batch: &Batch) -> impl Future<Output = Result<(), ExportError>> + Send;

    /// Flushes and releases resources; called once after the last export.
    fn shutdown(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// An export failed. The variant tells the driver whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The backend is unavailable or overloaded; the same batch may succeed later.
    #[error("transient export error: {message}")]
    Transient {
        message: String,
        /// How long the backend asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// The backend rejected the batch itself; retrying the same data will fail again.
    #[error("permanent export error: {message}")]
    Permanent { message: String },
}

impl ExportError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}
