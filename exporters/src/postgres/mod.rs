//! `postgres`: the event store for moderate volume and the database most teams already run.
//! Spans and logs go in with binary `COPY` into a staging table, then `INSERT ... ON CONFLICT DO
//! NOTHING` (spans keyed by project, trace id, span id and start time; logs and anomalies by a
//! hash of the record), so a retried batch is stored once. The trace list and the rollups are
//! brought up to date in the same transaction (`summaries`). Daily partitions are created ahead and on demand
//! and dropped past retention ([`PostgresStore::maintain_partitions`]).

mod config;
mod events;
pub mod partitions;
mod read;
mod statistics;
mod summaries;
mod write;

use std::time::{SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use llmscope_core::{Batch, ExportError, Exporter};
use tokio_postgres::NoTls;

pub use crate::tls::TlsMode;
pub use config::PostgresConfig;

use crate::query::{
    AnomalyQuery, BoxFuture, EventQuery, EventRow, QueryError, QueryStore, ScoredCall,
    SummaryGroup, SummaryQuery, TracePage, TraceQuery,
};
use crate::record::{AnomalyRow, SpanRecord};

/// Builds `postgres` exporters: events, queries and metadata in PostgreSQL, with a worker that
/// keeps the daily partitions.
pub struct Factory;

impl crate::factory::ExporterFactory for Factory {
    const TYPE: &'static str = "postgres";
    const OFFERS: crate::factory::Offers = crate::factory::Offers {
        query: true,
        metadata: true,
        migrations: true,
    };
    type Config = PostgresConfig;

    fn validate(config: &PostgresConfig) -> Result<(), String> {
        config.validate()
    }

    async fn build(
        id: &str,
        config: &PostgresConfig,
        _telemetry: &llmscope_core::telemetry::Telemetry,
    ) -> Result<crate::factory::Built, crate::factory::BuildError> {
        let store = PostgresStore::open(config.clone()).await?;
        let worker = Box::pin(partition_worker(id.to_owned(), store.clone()));
        Ok(crate::factory::Built {
            workers: vec![worker],
            ..crate::factory::Built::store(store.clone()).with_metadata(store)
        })
    }

    async fn migrate(
        config: &PostgresConfig,
    ) -> Result<Vec<&'static str>, crate::factory::BuildError> {
        let config = PostgresConfig {
            create_schema: false,
            ..config.clone()
        };
        Ok(PostgresStore::open(config).await?.migrate().await?)
    }
}

/// How often partitions are created ahead and dropped past retention.
const PARTITION_MAINTENANCE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Keeps a store's daily partitions: ahead of today, none past retention.
async fn partition_worker(id: String, store: PostgresStore) {
    let mut tick = tokio::time::interval(PARTITION_MAINTENANCE);
    loop {
        tick.tick().await;
        match store.maintain_partitions(now_ns()).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(exporter = %id, ?dropped, "dropped partitions past retention");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(exporter = %id, %error, "partition maintenance failed"),
        }
    }
}

/// `(version, name, sql)` in order. Append only.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "0001_init",
        include_str!("../../../sql/postgres/0001_init.sql"),
    ),
    (
        2,
        "0002_summaries",
        include_str!("../../../sql/postgres/0002_summaries.sql"),
    ),
    (
        3,
        "0003_alert_state",
        include_str!("../../../sql/postgres/0003_alert_state.sql"),
    ),
    (
        4,
        "0004_events",
        include_str!("../../../sql/postgres/0004_events.sql"),
    ),
    (
        5,
        "0005_resources",
        include_str!("../../../sql/postgres/0005_resources.sql"),
    ),
    (
        6,
        "0006_trace_list_keys",
        include_str!("../../../sql/postgres/0006_trace_list_keys.sql"),
    ),
    (
        7,
        "0007_rollup_parts",
        include_str!("../../../sql/postgres/0007_rollup_parts.sql"),
    ),
];

/// A failed PostgreSQL operation: the server's message, and whether to retry.
#[derive(Debug, thiserror::Error)]
#[error("postgres: {message}")]
pub struct PostgresError {
    pub message: String,
    pub retryable: bool,
}

/// SQLSTATE classes that mean the statement or the data is wrong: data exceptions (22),
/// integrity violations (23), syntax and undefined objects (42). Everything else (connection
/// loss, serialization failures, deadlocks, resource exhaustion, shutdown) is retried.
fn classify(e: tokio_postgres::Error) -> PostgresError {
    let retryable = !e
        .code()
        .is_some_and(|c| matches!(&c.code()[..2], "22" | "23" | "42"));
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    };
    PostgresError { message, retryable }
}

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> PostgresError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => classify(e),
        other => PostgresError {
            message: other.to_string(),
            retryable: true,
        },
    }
}

impl From<tokio_postgres::Error> for PostgresError {
    fn from(e: tokio_postgres::Error) -> Self {
        classify(e)
    }
}

impl From<PostgresError> for ExportError {
    fn from(e: PostgresError) -> Self {
        if e.retryable {
            ExportError::transient(e.message)
        } else {
            ExportError::permanent(e.message)
        }
    }
}

#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    config: PostgresConfig,
    known: std::sync::Arc<partitions::Known>,
    pub(crate) statistics: std::sync::Arc<statistics::Statistics>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl PostgresStore {
    /// Builds the pool and, with `create_schema`, applies migrations and creates the partitions
    /// of today and the days ahead.
    pub async fn open(config: PostgresConfig) -> Result<Self, PostgresError> {
        let mut pg: tokio_postgres::Config =
            config
                .url
                .parse()
                .map_err(|e: tokio_postgres::Error| PostgresError {
                    message: format!("invalid url: {e}"),
                    retryable: false,
                })?;
        if !config.password.is_empty() {
            pg.password(config.password.expose());
        }
        pg.connect_timeout(config.timeout);
        pg.options(format!(
            "-c statement_timeout={}",
            config.timeout.as_millis()
        ));
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.tls {
            TlsMode::Disable => Manager::from_config(pg, NoTls, manager_config),
            mode => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let rustls = crate::tls::client_config(mode, config.ca_file.as_deref()).map_err(
                    |message| PostgresError {
                        message: format!("tls: {message}"),
                        retryable: false,
                    },
                )?;
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(rustls);
                Manager::from_config(pg, connector, manager_config)
            }
        };
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .build()
            .map_err(|e| PostgresError {
                message: e.to_string(),
                retryable: false,
            })?;
        let store = Self {
            pool,
            config,
            known: Default::default(),
            statistics: Default::default(),
        };
        if store.config.create_schema {
            store.migrate().await?;
            store.maintain_partitions(now_ns()).await?;
        }
        Ok(store)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies every migration not yet recorded in `schema_migrations`, each in a transaction
    /// under an advisory lock (several collectors may start at once). Returns the names applied.
    pub async fn migrate(&self) -> Result<Vec<&'static str>, PostgresError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())",
            )
            .await?;
        let mut applied = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock(738127)", &[])
                .await?;
            let done = tx
                .query_opt(
                    "SELECT 1 FROM schema_migrations WHERE version = $1",
                    &[version],
                )
                .await?
                .is_some();
            if !done {
                tx.batch_execute(sql).await.map_err(|e| {
                    let mut e = classify(e);
                    e.message = format!("migration {name}: {}", e.message);
                    e
                })?;
                // The trace list's rows and keys, and the rollups, are derived in Rust
                // (`query::trace_list`, `query::rollup`); the rollups in their form since 0007.
                if [2, 6, 7].contains(version) {
                    let stored: bool = tx
                        .query_one("SELECT EXISTS (SELECT 1 FROM spans)", &[])
                        .await?
                        .get(0);
                    if stored {
                        tracing::info!(
                            name,
                            "rewriting what is derived from the traces already stored \
                             (minutes on a large store)"
                        );
                    }
                    let dims = match *version {
                        7 => summaries::prepare_parts(&tx).await?,
                        _ => Vec::new(),
                    };
                    let traces = summaries::refresh_all(&tx, dims.is_empty(), &dims).await?;
                    if traces > 0 {
                        tracing::info!(
                            traces,
                            name,
                            "rewrote what is derived from the traces already stored"
                        );
                    }
                }
                tx.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[version, name],
                )
                .await?;
                applied.push(*name);
            }
            tx.commit().await?;
        }
        Ok(applied)
    }

    /// Creates partitions ahead of `now_ns` and drops those past retention; returns the dropped.
    pub async fn maintain_partitions(&self, now_ns: i64) -> Result<Vec<String>, PostgresError> {
        partitions::maintain(
            &self.pool,
            &self.known,
            now_ns,
            self.config.partitions_ahead,
            self.config.retention_days,
        )
        .await
    }

    /// Writes one batch, its events and its rollup increments in one transaction.
    pub async fn write(&self, batch: &Batch) -> Result<(), PostgresError> {
        write::batch(self, batch).await
    }
}

impl Exporter for PostgresStore {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.write(batch).await.map_err(ExportError::from)
    }
}

fn query_error(e: PostgresError) -> QueryError {
    QueryError(e.message)
}

impl QueryStore for PostgresStore {
    fn traces<'a>(&'a self, query: &'a TraceQuery) -> BoxFuture<'a, Result<TracePage, QueryError>> {
        Box::pin(async move { read::traces(self, query).await.map_err(query_error) })
    }

    fn trace<'a>(
        &'a self,
        project: &'a str,
        trace_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SpanRecord>>, QueryError>> {
        Box::pin(async move {
            read::trace(self, project, trace_id)
                .await
                .map_err(query_error)
        })
    }

    fn summary<'a>(
        &'a self,
        query: &'a SummaryQuery,
    ) -> BoxFuture<'a, Result<Vec<SummaryGroup>, QueryError>> {
        Box::pin(async move { read::summary(self, query).await.map_err(query_error) })
    }

    fn anomalies<'a>(
        &'a self,
        query: &'a AnomalyQuery,
    ) -> BoxFuture<'a, Result<Vec<AnomalyRow>, QueryError>> {
        Box::pin(async move { read::anomalies(self, query).await.map_err(query_error) })
    }

    fn events<'a>(
        &'a self,
        query: &'a EventQuery,
    ) -> BoxFuture<'a, Result<Vec<EventRow>, QueryError>> {
        Box::pin(async move { events::events(self, query).await.map_err(query_error) })
    }

    fn scored_calls<'a>(
        &'a self,
        query: &'a SummaryQuery,
        score: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ScoredCall>, QueryError>> {
        Box::pin(async move {
            events::scored_calls(self, query, score)
                .await
                .map_err(query_error)
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), QueryError>> {
        Box::pin(async move {
            let client = self
                .pool
                .get()
                .await
                .map_err(|e| query_error(pool_error(e)))?;
            client
                .query_one("SELECT 1", &[])
                .await
                .map(|_| ())
                .map_err(|e| query_error(classify(e)))
        })
    }
}
