//! A pipeline: processors in config order, then the queue that hands batches to the exporters.
//! Receivers see pipelines only as [`Consumer`]s.

use std::sync::{Arc, Mutex};

use llmscope_core::{Batch, Processor};

use crate::queue::{PushError, Queue};
use crate::telemetry::Telemetry;

pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Why a batch was not accepted. Receivers map these to OTLP status codes.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// A processor refused the data; sending it again will not help.
    #[error("{0}")]
    Refused(String),
    /// The pipeline is full or shutting down; the client should retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A rate limit refused it; the client should retry after the given time.
    #[error("{message}")]
    Limited {
        message: String,
        retry_after: std::time::Duration,
    },
}

/// Something that takes batches from a receiver: a pipeline, or several.
pub trait Consumer: Send + Sync + 'static {
    /// Resolves once the batch is in the queue (accepted) or refused.
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>>;
}

/// Processors, run in order under one lock (they take `&mut self` and never block), then the
/// queue.
pub struct Pipeline<Q> {
    id: String,
    processors: Mutex<Vec<(String, Box<dyn Processor>)>>,
    queue: Q,
    telemetry: Telemetry,
}

impl<Q: Queue> Pipeline<Q> {
    pub fn new(
        id: String,
        processors: Vec<(String, Box<dyn Processor>)>,
        queue: Q,
        telemetry: Telemetry,
    ) -> Self {
        Self {
            id,
            processors: Mutex::new(processors),
            queue,
            telemetry,
        }
    }

    fn process(&self, batch: &mut Batch) -> Result<(), ConsumeError> {
        let mut processors = self.processors.lock().unwrap_or_else(|p| p.into_inner());
        for (id, p) in processors.iter_mut() {
            if let Err(e) = p.process(batch) {
                let items = batch.payload.item_count() as u64;
                self.telemetry
                    .counter(
                        "llmscope_processor_refused_items_total",
                        &[("processor", id), ("pipeline", &self.id)],
                    )
                    .add(items);
                return Err(ConsumeError::Refused(e.to_string()));
            }
        }
        Ok(())
    }
}

impl<Q: Queue> Consumer for Pipeline<Q> {
    fn consume(&self, mut batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            self.process(&mut batch)?;
            let items = batch.payload.item_count() as u64;
            match self.queue.push(Arc::new(batch)).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    let reason = match e {
                        PushError::Full => "queue_full",
                        PushError::Closed => "shutting_down",
                        PushError::Storage => "queue_storage_error",
                    };
                    self.telemetry
                        .counter(
                            "llmscope_pipeline_refused_items_total",
                            &[("pipeline", &self.id), ("reason", reason)],
                        )
                        .add(items);
                    Err(ConsumeError::Unavailable(e.to_string()))
                }
            }
        })
    }
}

/// One receiver feeding several pipelines of the same signal: each gets its own copy, and the
/// batch is accepted only when every pipeline accepted it.
pub struct Fanout(pub Vec<Arc<dyn Consumer>>);

impl Consumer for Fanout {
    fn consume(&self, batch: Batch) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let Some((last, rest)) = self.0.split_last() else {
                return Ok(());
            };
            for consumer in rest {
                consumer.consume(batch.clone()).await?;
            }
            last.consume(batch).await
        })
    }
}
