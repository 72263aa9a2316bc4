//! Component construction: the one `match` from a component's config to the component.

use std::sync::Arc;

use llmscope_core::{Exporter, Processor};
use llmscope_exporters::clickhouse::{ClickHouseConfig, ClickHouseError, ClickHouseStore};
use llmscope_exporters::metadata::MetadataStore;
use llmscope_exporters::postgres::{PostgresConfig, PostgresError, PostgresStore};
use llmscope_exporters::query::QueryStore;
use llmscope_exporters::sqlite::{OpenError, SqliteStore};
use llmscope_processors::anomaly::Anomaly;
use llmscope_processors::cost::Cost;
use llmscope_processors::normalize::Normalize;
use llmscope_processors::redact::Redact;
use tokio::sync::{mpsc, watch};

use crate::queue::durable::LogReader;
use tokio::task::JoinHandle;

use crate::config::{ExporterConfig, ProcessorConfig};
use crate::driver::{self, Delivery};
use crate::telemetry::Telemetry;

/// Batches each exporter's queue holds before pipelines wait (and then refuse, retryably).
pub const EXPORTER_QUEUE_BATCHES: usize = 64;

/// A new instance of a processor (each pipeline gets its own).
pub fn processor(
    id: &str,
    config: &ProcessorConfig,
    telemetry: &Telemetry,
) -> Result<Box<dyn Processor>, BuildError> {
    let failed = |reason| BuildError::Processor {
        id: id.to_owned(),
        reason,
    };
    Ok(match config {
        ProcessorConfig::Normalize(c) => Box::new(Normalize::new(c.clone())),
        ProcessorConfig::Cost(c) => Box::new(Cost::new(c, telemetry).map_err(failed)?),
        ProcessorConfig::Redact(c) => Box::new(Redact::new(c, telemetry).map_err(failed)?),
        ProcessorConfig::Anomaly(c) => Box::new(Anomaly::new(c.clone(), telemetry)),
    })
}

/// Most processor chains a pipeline runs side by side.
pub const MAX_CHAINS: usize = 8;

/// `chains` equal chains of the processors `ids` (with their configs), for one pipeline.
/// Stateless processors get an instance per chain; the anomaly processor, whose baselines must
/// see every span of the pipeline, is one instance shared by all chains.
pub fn processor_chains(
    processors: &[(&str, &ProcessorConfig)],
    chains: usize,
    telemetry: &Telemetry,
) -> Result<Vec<crate::pipeline::Chain>, BuildError> {
    let chains = chains.clamp(1, MAX_CHAINS);
    let mut out: Vec<crate::pipeline::Chain> = (0..chains).map(|_| Vec::new()).collect();
    for &(id, config) in processors {
        if let ProcessorConfig::Anomaly(_) = config {
            let one = Arc::new(std::sync::Mutex::new(processor(id, config, telemetry)?));
            for chain in &mut out {
                let shared = crate::pipeline::Shared(Arc::clone(&one));
                chain.push((id.to_owned(), Box::new(shared)));
            }
        } else {
            for chain in &mut out {
                chain.push((id.to_owned(), processor(id, config, telemetry)?));
            }
        }
    }
    Ok(out)
}

/// A running exporter: the sender side of its queue, its driver task, and the store it can
/// answer queries from, if any.
pub struct RunningExporter {
    pub sender: mpsc::Sender<Arc<llmscope_core::Batch>>,
    pub driver: JoinHandle<()>,
    pub store: Option<Arc<dyn QueryStore>>,
    /// The metadata store (projects, API keys) of stores that have one.
    pub metadata: Option<Arc<dyn MetadataStore>>,
    /// Starts a driver of this exporter over a durable queue reader.
    pub spawn_log: Box<dyn Fn(LogReader, watch::Receiver<bool>) -> JoinHandle<()> + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("processor {id}: {reason}")]
    Processor { id: String, reason: String },
    #[error("exporter {id}: {source}")]
    Sqlite { id: String, source: OpenError },
    #[error("exporter {id}: {source}")]
    ClickHouse { id: String, source: ClickHouseError },
    #[error("exporter {id}: {source}")]
    Postgres { id: String, source: PostgresError },
}

/// Opens an exporter's backend (creating and migrating its schema) and starts its driver.
pub async fn exporter(
    id: &str,
    config: &ExporterConfig,
    delivery: Delivery,
    telemetry: &Telemetry,
) -> Result<RunningExporter, BuildError> {
    let owned = || id.to_owned();
    Ok(match config {
        ExporterConfig::Sqlite(c) => {
            let store = SqliteStore::open(c.clone()).map_err(|source| BuildError::Sqlite {
                id: owned(),
                source,
            })?;
            let metadata: Arc<dyn MetadataStore> = Arc::new(store.clone());
            RunningExporter {
                metadata: Some(metadata),
                ..running(id, store, delivery, telemetry)
            }
        }
        ExporterConfig::Postgres(c) => {
            let store =
                PostgresStore::open(c.clone())
                    .await
                    .map_err(|source| BuildError::Postgres {
                        id: owned(),
                        source,
                    })?;
            spawn_partition_worker(owned(), store.clone());
            let metadata: Arc<dyn MetadataStore> = Arc::new(store.clone());
            RunningExporter {
                metadata: Some(metadata),
                ..running(id, store, delivery, telemetry)
            }
        }
        ExporterConfig::ClickHouse(c) => {
            let store = ClickHouseStore::open(c.clone()).await.map_err(|source| {
                BuildError::ClickHouse {
                    id: owned(),
                    source,
                }
            })?;
            running(id, store, delivery, telemetry)
        }
    })
}

/// A store as a running exporter: its queue, its driver, and its query side for the API.
fn running<S: Exporter + QueryStore + Clone + Sync>(
    id: &str,
    store: S,
    delivery: Delivery,
    telemetry: &Telemetry,
) -> RunningExporter {
    let (sender, rx) = mpsc::channel(EXPORTER_QUEUE_BATCHES);
    let driver = driver::spawn(
        id.to_owned(),
        store.clone(),
        rx,
        delivery,
        telemetry.clone(),
    );
    let (log_id, log_store, log_telemetry) = (id.to_owned(), store.clone(), telemetry.clone());
    RunningExporter {
        sender,
        driver,
        store: Some(Arc::new(store)),
        metadata: None,
        spawn_log: Box::new(move |reader, stop| {
            driver::spawn_log(
                log_id.clone(),
                log_store.clone(),
                reader,
                delivery,
                log_telemetry.clone(),
                stop,
            )
        }),
    }
}

/// How often PostgreSQL partitions are created ahead and dropped past retention.
const PARTITION_MAINTENANCE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Keeps a PostgreSQL store's daily partitions: ahead of today, none past retention.
fn spawn_partition_worker(id: String, store: PostgresStore) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PARTITION_MAINTENANCE);
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            match store.maintain_partitions(now).await {
                Ok(dropped) if !dropped.is_empty() => {
                    tracing::info!(exporter = %id, ?dropped, "dropped partitions past retention");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(exporter = %id, %error, "partition maintenance failed")
                }
            }
        }
    });
}

/// Applies the schema migrations of an exporter's backend; returns what was applied.
pub async fn migrate(config: &ExporterConfig) -> Result<Vec<&'static str>, String> {
    match config {
        ExporterConfig::Sqlite(c) => SqliteStore::open(c.clone())
            .map(|s| s.applied_migrations())
            .map_err(|e| e.to_string()),
        ExporterConfig::ClickHouse(c) => {
            let config = ClickHouseConfig {
                create_schema: false,
                ..c.clone()
            };
            let store = ClickHouseStore::open(config)
                .await
                .map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())
        }
        ExporterConfig::Postgres(c) => {
            let config = PostgresConfig {
                create_schema: false,
                ..c.clone()
            };
            let store = PostgresStore::open(config)
                .await
                .map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())
        }
    }
}

/// The metadata store of an exporter's backend (schema applied), for the `keys` commands.
pub async fn metadata_store(config: &ExporterConfig) -> Result<Arc<dyn MetadataStore>, String> {
    match config {
        ExporterConfig::Sqlite(c) => Ok(Arc::new(
            SqliteStore::open(c.clone()).map_err(|e| e.to_string())?,
        )),
        ExporterConfig::Postgres(c) => Ok(Arc::new(
            PostgresStore::open(c.clone())
                .await
                .map_err(|e| e.to_string())?,
        )),
        ExporterConfig::ClickHouse(_) => {
            Err("ClickHouse holds no keys; use a sqlite or postgres exporter".into())
        }
    }
}
