//! A pipeline: processors in config order, then the queue that hands batches to the exporters.
//! Receivers see pipelines only as [`Consumer`]s.

use llmscope_core::telemetry::metrics;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use llmscope_core::{Batch, Processor};

use crate::config::ProcessorConfig;
use crate::queue::{PushError, Queue};
use crate::telemetry::Telemetry;

pub use llmscope_core::BoxFuture;

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

/// The pipeline's processors in config order, each with its id.
pub type Chain = Vec<(String, Box<dyn Processor>)>;

/// Most processor chains a pipeline runs side by side.
pub const MAX_CHAINS: usize = 8;

/// `chains` equal chains of the processors `processors` (ids with their configs), for one
/// pipeline. Each processor gets an instance per chain, except those whose state must see every
/// item ([`ProcessorConfig::shared`]): one instance shared by all chains. A processor that cannot
/// be built is returned as (id, reason).
pub fn chains(
    processors: &[(&str, &ProcessorConfig)],
    chains: usize,
    telemetry: &Telemetry,
) -> Result<Vec<Chain>, (String, String)> {
    let chains = chains.clamp(1, MAX_CHAINS);
    let mut out: Vec<Chain> = (0..chains).map(|_| Vec::new()).collect();
    for &(id, config) in processors {
        let build = || {
            config
                .build(telemetry)
                .map_err(|reason| (id.to_owned(), reason))
        };
        if config.shared() {
            let one = Arc::new(Mutex::new(build()?));
            for chain in &mut out {
                chain.push((id.to_owned(), Box::new(Shared(Arc::clone(&one)))));
            }
        } else {
            for chain in &mut out {
                chain.push((id.to_owned(), build()?));
            }
        }
    }
    Ok(out)
}

/// Processors, run in order, then the queue. A pipeline holds several equal chains of its
/// processors so that requests on different threads are processed side by side: each request
/// takes a free chain (processors take `&mut self` and never block). Processors whose state
/// must be one for the whole pipeline (anomaly baselines) are one instance shared by every chain
/// ([`Shared`]).
pub struct Pipeline<Q> {
    id: String,
    chains: Vec<Mutex<Chain>>,
    /// Where the next request starts looking for a free chain.
    next: AtomicUsize,
    queue: Q,
    telemetry: Telemetry,
    taps: Vec<Arc<dyn Tap>>,
}

/// Sees every batch a pipeline has queued (the live stream, the GenAI metrics). Must not wait.
pub trait Tap: Send + Sync {
    fn offer(&self, batch: &Arc<Batch>);
}

/// One processor instance behind a lock, in several chains.
pub struct Shared(pub Arc<Mutex<Box<dyn Processor>>>);

impl Processor for Shared {
    fn process(&mut self, batch: &mut Batch) -> Result<(), llmscope_core::ProcessError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .process(batch)
    }
}

impl<Q: Queue> Pipeline<Q> {
    /// `chains` must be at least one; each holds the same processors in the same order.
    pub fn new(id: String, chains: Vec<Chain>, queue: Q, telemetry: Telemetry) -> Self {
        let mut chains: Vec<Mutex<Chain>> = chains.into_iter().map(Mutex::new).collect();
        if chains.is_empty() {
            chains.push(Mutex::new(Vec::new()));
        }
        Self {
            id,
            chains,
            next: AtomicUsize::new(0),
            queue,
            telemetry,
            taps: Vec::new(),
        }
    }

    /// Offers every queued batch to `taps` too, in order.
    pub fn with_taps(mut self, taps: Vec<Arc<dyn Tap>>) -> Self {
        self.taps = taps;
        self
    }

    /// A free chain if there is one (there always is while no more requests are processed at
    /// once than there are chains), else waits for the next in turn.
    fn chain(&self) -> std::sync::MutexGuard<'_, Chain> {
        let n = self.chains.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .find_map(|i| self.chains[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.chains[start % n]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            })
    }

    fn process(&self, batch: &mut Batch) -> Result<(), ConsumeError> {
        let mut processors = self.chain();
        for (id, p) in processors.iter_mut() {
            if let Err(e) = p.process(batch) {
                let items = batch.payload.item_count() as u64;
                self.telemetry
                    .counter(
                        &metrics::PROCESSOR_REFUSED_ITEMS,
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
            let batch = Arc::new(batch);
            match self.queue.push(Arc::clone(&batch)).await {
                Ok(()) => {
                    for tap in &self.taps {
                        tap.offer(&batch);
                    }
                    Ok(())
                }
                Err(e) => {
                    let reason = match e {
                        PushError::Full => "queue_full",
                        PushError::Closed => "shutting_down",
                        PushError::Storage => "queue_storage_error",
                    };
                    self.telemetry
                        .counter(
                            &metrics::PIPELINE_REFUSED_ITEMS,
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

#[cfg(test)]
mod tests {
    use std::sync::Condvar;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use llmscope_core::test_util::traces;

    use super::*;
    use crate::queue::MemoryQueue;

    /// Waits (up to 500 ms) inside `process` until two requests are inside at once, and
    /// records whether they were.
    #[derive(Clone, Default)]
    struct Meet {
        inside: Arc<(Mutex<u32>, Condvar)>,
        met: Arc<AtomicBool>,
    }

    impl Processor for Meet {
        fn process(&mut self, _: &mut Batch) -> Result<(), llmscope_core::ProcessError> {
            let (count, arrived) = &*self.inside;
            let mut n = count.lock().expect("lock");
            *n += 1;
            arrived.notify_all();
            let (mut n, _) = arrived
                .wait_timeout_while(n, Duration::from_millis(500), |n| *n < 2)
                .expect("wait");
            if *n >= 2 {
                self.met.store(true, Ordering::SeqCst);
            }
            *n -= 1;
            Ok(())
        }
    }

    /// Whether two requests on two threads were processed at the same time.
    fn side_by_side(chains: usize) -> bool {
        let meet = Meet::default();
        let chains = (0..chains)
            .map(|_| {
                vec![(
                    "meet".to_owned(),
                    Box::new(meet.clone()) as Box<dyn Processor>,
                )]
            })
            .collect();
        let queue = MemoryQueue::new(Vec::new(), Duration::from_millis(10));
        let pipeline = Pipeline::new("traces".into(), chains, queue, Telemetry::default());
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    pipeline
                        .process(&mut traces("svc", vec![]))
                        .expect("processed")
                });
            }
        });
        meet.met.load(Ordering::SeqCst)
    }

    #[test]
    fn requests_on_different_threads_take_different_chains() {
        assert!(side_by_side(2));
        assert!(!side_by_side(1), "one chain takes one request at a time");
    }

    #[test]
    fn a_shared_processor_is_one_instance_in_every_chain() {
        /// Numbers the batches it sees, in its own state, and writes each number down.
        struct Count {
            seen: u32,
            log: Arc<Mutex<Vec<u32>>>,
        }
        impl Processor for Count {
            fn process(&mut self, _: &mut Batch) -> Result<(), llmscope_core::ProcessError> {
                self.seen += 1;
                self.log.lock().expect("lock").push(self.seen);
                Ok(())
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let one: Arc<Mutex<Box<dyn Processor>>> = Arc::new(Mutex::new(Box::new(Count {
            seen: 0,
            log: Arc::clone(&log),
        })));
        let chains = (0..3)
            .map(|_| {
                let shared: Box<dyn Processor> = Box::new(Shared(Arc::clone(&one)));
                vec![("count".to_owned(), shared)]
            })
            .collect();
        let queue = MemoryQueue::new(Vec::new(), Duration::from_millis(10));
        let pipeline = Pipeline::new("traces".into(), chains, queue, Telemetry::default());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..25 {
                        pipeline
                            .process(&mut traces("svc", vec![]))
                            .expect("processed");
                    }
                });
            }
        });
        let mut numbers = log.lock().expect("lock").clone();
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=100).collect::<Vec<_>>(), "one count of 100");
    }
}
