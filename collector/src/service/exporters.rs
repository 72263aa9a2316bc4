//! Step one: every exporter a pipeline or an extension uses is built, its background workers
//! started, and (with the memory queue) its queue and driver. Disk-queue drivers start with the
//! pipelines, one per pipeline and exporter, sharing the exporter's export slots.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use llmscope_core::{Batch, DynExporter};
use llmscope_exporters::metadata::MetadataStore;
use llmscope_exporters::query::QueryStore;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::StartError;
use crate::config::{Config, ExtensionConfig};
use crate::driver::{self, Delivery};
use crate::queue::{MemoryReader, QueueKind, Reader};
use crate::telemetry::Telemetry;

/// Batches each exporter's memory queue holds before pipelines wait (and then refuse,
/// retryably).
pub const MEMORY_QUEUE_BATCHES: usize = 64;

/// A built exporter, what it offers, and the drivers feeding it.
pub struct RunningExporter {
    pub exporter: Arc<dyn DynExporter>,
    pub query: Option<Arc<dyn QueryStore>>,
    pub metadata: Option<Arc<dyn MetadataStore>>,
    pub delivery: Delivery,
    /// `delivery.concurrency` permits: exports in flight across all of this exporter's drivers.
    slots: Arc<Semaphore>,
    /// The memory queue's sender, until the pipelines hold their copies.
    pub sender: Option<mpsc::Sender<Arc<Batch>>>,
    drivers: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
}

impl RunningExporter {
    /// Starts a driver of this exporter over `reader`.
    pub fn drive<R: Reader>(
        &mut self,
        id: &str,
        reader: R,
        telemetry: &Telemetry,
        stop: &watch::Receiver<bool>,
    ) {
        self.drivers.push(driver::spawn(
            id.to_owned(),
            Arc::clone(&self.exporter),
            reader,
            self.delivery,
            Arc::clone(&self.slots),
            telemetry.clone(),
            stop.clone(),
        ));
    }

    /// Waits for every driver to drain, then shuts the exporter down (once) and stops its
    /// workers.
    pub async fn stop(self, id: &str) {
        for handle in self.drivers {
            if let Err(error) = handle.await {
                tracing::warn!(exporter = %id, %error, "exporter driver failed");
            }
        }
        self.exporter.as_ref().shutdown_boxed().await;
        for worker in self.workers {
            worker.abort();
        }
        tracing::debug!(exporter = %id, "exporter stopped");
    }
}

/// Exporters used by a pipeline or read by an extension, built and (memory queue) driven.
pub async fn start(
    config: &Config,
    telemetry: &Telemetry,
    drain: &watch::Receiver<bool>,
) -> Result<BTreeMap<String, RunningExporter>, StartError> {
    let mut wanted: BTreeSet<&str> = config
        .pipelines
        .values()
        .flat_map(|(_, p)| p.exporters.iter().map(String::as_str))
        .collect();
    for ext in config.extensions.values() {
        match ext {
            ExtensionConfig::Api(api) => wanted.insert(&api.store),
            ExtensionConfig::Auth(auth) => auth.store().is_some_and(|s| wanted.insert(s)),
            ExtensionConfig::Alerts(alerts) => {
                wanted.insert(&alerts.store) | wanted.insert(&alerts.query_store)
            }
        };
    }
    let mut exporters = BTreeMap::new();
    for id in wanted {
        let Some(exporter) = config.exporters.get(id) else {
            continue;
        };
        let built = exporter
            .build(id, telemetry)
            .await
            .map_err(|e| StartError::Exporter {
                id: id.to_owned(),
                reason: e.to_string(),
            })?;
        let delivery = config.delivery_of(id);
        let mut running = RunningExporter {
            exporter: built.exporter,
            query: built.query,
            metadata: built.metadata,
            delivery,
            slots: Arc::new(Semaphore::new(delivery.concurrency.max(1))),
            sender: None,
            drivers: Vec::new(),
            workers: built.workers.into_iter().map(tokio::spawn).collect(),
        };
        if config.queue.kind == QueueKind::Memory {
            let (sender, receiver) = mpsc::channel(MEMORY_QUEUE_BATCHES);
            running.sender = Some(sender);
            running.drive(id, MemoryReader::new(receiver), telemetry, drain);
        }
        exporters.insert(id.to_owned(), running);
    }
    Ok(exporters)
}
