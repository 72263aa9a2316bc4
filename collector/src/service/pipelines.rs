//! Step two: each pipeline's processor chains and queue (memory channels into its exporters'
//! drivers, or its own disk queue with a driver per exporter), and for each receiver the
//! pipelines it feeds per signal.

use llmscope_core::telemetry::metrics;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::StartError;
use super::exporters::RunningExporter;
use crate::config::{Config, PipelineConfig, Signal};
use crate::pipeline::{self, Chain, Consumer, Fanout, Pipeline, Tap};
use crate::queue::durable::{DurableHandle, DurableQueue};
use crate::queue::{MemoryQueue, QueueKind};
use crate::receiver::Consumers;
use crate::telemetry::Telemetry;

/// How long a pipeline waits for room in a full memory queue before refusing a request.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// What sees the batches some pipelines queue, and which pipelines (by id).
pub type Taps = Vec<(Arc<dyn Tap>, BTreeSet<String>)>;

/// Every pipeline, started: as what each receiver feeds, and by id.
pub struct Started {
    pub feeds: BTreeMap<String, Consumers>,
    pub pipelines: BTreeMap<String, Arc<dyn Consumer>>,
}

/// Every pipeline, started, each offering what it queues to the taps that name it.
pub fn start(
    config: &Config,
    exporters: &mut BTreeMap<String, RunningExporter>,
    telemetry: &Telemetry,
    drain: &watch::Receiver<bool>,
    taps: &Taps,
) -> Result<Started, StartError> {
    let mut feeds: BTreeMap<(&String, Signal), Vec<Arc<dyn Consumer>>> = BTreeMap::new();
    let mut by_id = BTreeMap::new();
    for (id, (signal, p)) in &config.pipelines {
        let chains = chains(config, p, telemetry)?;
        let taps: Vec<Arc<dyn Tap>> = taps
            .iter()
            .filter(|(_, ids)| ids.contains(id))
            .map(|(t, _)| Arc::clone(t))
            .collect();
        let pipeline: Arc<dyn Consumer> = match config.queue.kind {
            QueueKind::Memory => {
                let senders = p
                    .exporters
                    .iter()
                    .filter_map(|name| exporters.get(name)?.sender.clone())
                    .collect();
                let queue = MemoryQueue::new(senders, QUEUE_WAIT);
                Arc::new(
                    Pipeline::new(id.clone(), chains, queue, telemetry.clone()).with_taps(taps),
                )
            }
            QueueKind::Disk => {
                let queue = disk_queue(config, id, p, exporters, telemetry, drain)?;
                Arc::new(
                    Pipeline::new(id.clone(), chains, DurableHandle(queue), telemetry.clone())
                        .with_taps(taps),
                )
            }
        };
        for r in &p.receivers {
            feeds
                .entry((r, *signal))
                .or_default()
                .push(Arc::clone(&pipeline));
        }
        by_id.insert(id.clone(), pipeline);
    }
    let mut consumers: BTreeMap<String, Consumers> = BTreeMap::new();
    for ((receiver, signal), mut pipelines) in feeds {
        let consumer: Arc<dyn Consumer> = if pipelines.len() == 1 {
            pipelines.remove(0)
        } else {
            Arc::new(Fanout(pipelines))
        };
        let c = consumers.entry(receiver.clone()).or_default();
        match signal {
            Signal::Traces => c.traces = Some(consumer),
            Signal::Logs => c.logs = Some(consumer),
            Signal::Metrics => c.metrics = Some(consumer),
        }
    }
    Ok(Started {
        feeds: consumers,
        pipelines: by_id,
    })
}

/// One chain of the pipeline's processors per core, at most [`pipeline::MAX_CHAINS`].
fn chains(
    config: &Config,
    p: &PipelineConfig,
    telemetry: &Telemetry,
) -> Result<Vec<Chain>, StartError> {
    let processors: Vec<_> = p
        .processors
        .iter()
        .filter_map(|name| Some((name.as_str(), config.processors.get(name)?)))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    pipeline::chains(&processors, cores, telemetry)
        .map_err(|(id, reason)| StartError::Processor { id, reason })
}

/// The pipeline `id`'s disk queue, with a driver per exporter reading it and its gauges.
fn disk_queue(
    config: &Config,
    id: &str,
    p: &PipelineConfig,
    exporters: &mut BTreeMap<String, RunningExporter>,
    telemetry: &Telemetry,
    drain: &watch::Receiver<bool>,
) -> Result<Arc<DurableQueue>, StartError> {
    let q = &config.queue;
    let dir = q.dir.join(id.replace('/', "_"));
    let failed = |reason: String| StartError::Queue {
        pipeline: id.to_owned(),
        dir: dir.display().to_string(),
        reason,
    };
    let sealer = q.sealer().map_err(failed)?;
    let (queue, recovery) = DurableQueue::open(
        &dir,
        q.fsync(),
        q.segment_bytes,
        q.max_bytes,
        q.when_full,
        sealer,
    )
    .map_err(|e| failed(e.to_string()))?;
    if recovery.truncated_bytes > 0 {
        tracing::warn!(pipeline = %id, truncated_bytes = recovery.truncated_bytes, "cut a torn queue tail");
    }
    telemetry
        .counter(&metrics::QUEUE_TRUNCATED_BYTES, &[("pipeline", id)])
        .add(recovery.truncated_bytes);
    queue.limit_dead_letters(q.dead_letter_max_bytes);
    queue.count_drops(telemetry.counter(&metrics::QUEUE_DROPPED_RECORDS, &[("pipeline", id)]));
    let weak = Arc::downgrade(&queue);
    telemetry.gauge(&metrics::QUEUE_BYTES, &[("pipeline", id)], move || {
        weak.upgrade().map_or(0, |q| q.log().bytes())
    });
    for name in &p.exporters {
        let Some(exporter) = exporters.get_mut(name) else {
            continue;
        };
        let reader = queue.reader(name);
        let weak = Arc::downgrade(&queue);
        let cursor = name.clone();
        telemetry.gauge(
            &metrics::QUEUE_PENDING_BYTES,
            &[("pipeline", id), ("exporter", name)],
            move || weak.upgrade().map_or(0, |q| q.pending_bytes(&cursor)),
        );
        telemetry.gauge(
            &metrics::QUEUE_OLDEST_UNEXPORTED_AGE,
            &[("pipeline", id), ("exporter", name)],
            reader.oldest_age(),
        );
        exporter.drive(name, reader, telemetry, drain);
    }
    Ok(queue)
}
