//! `clickhouse`: the scale-out event store. Spans, logs/events, anomalies and metric points are
//! inserted as `RowBinaryWithNamesAndTypes` with LZ4; hourly and daily rollups are kept by
//! materialized views; the same store answers the query API (rollups for the whole hours and
//! days of a summary, raw rows for its edges and for drill-downs).
//!
//! Guarantees: a retried batch is not stored twice: each insert carries an
//! `insert_deduplication_token` derived from its content, which also deduplicates the rollups
//! fed by it. Errors keep the server's message and are classified retryable or not.

mod config;
mod events;
mod read;
mod rowbinary;
mod rows;
mod schema;

use clickhouse::Client;
use llmscope_core::{Batch, ExportError, Exporter, Payload};

pub use config::ClickHouseConfig;
pub use rows::encode_spans;
pub use schema::MIGRATIONS;

use crate::query::{
    AnomalyQuery, BoxFuture, EventQuery, EventRow, QueryError, QueryStore, ScoredCall,
    SummaryGroup, SummaryQuery, TracePage, TraceQuery,
};
use crate::record::{self, AnomalyRow, SpanRecord};

/// Builds `clickhouse` exporters: the scale-out event store, which answers queries too.
pub struct Factory;

impl crate::factory::ExporterFactory for Factory {
    const TYPE: &'static str = "clickhouse";
    const OFFERS: crate::factory::Offers = crate::factory::Offers {
        query: true,
        metadata: false,
        migrations: true,
    };
    type Config = ClickHouseConfig;

    fn validate(config: &ClickHouseConfig) -> Result<(), String> {
        config.validate()
    }

    async fn build(
        _id: &str,
        config: &ClickHouseConfig,
        _telemetry: &llmscope_core::telemetry::Telemetry,
    ) -> Result<crate::factory::Built, crate::factory::BuildError> {
        let store = ClickHouseStore::open(config.clone()).await?;
        Ok(crate::factory::Built::store(store))
    }

    async fn migrate(
        config: &ClickHouseConfig,
    ) -> Result<Vec<&'static str>, crate::factory::BuildError> {
        let config = ClickHouseConfig {
            create_schema: false,
            ..config.clone()
        };
        Ok(ClickHouseStore::open(config).await?.migrate().await?)
    }
}

#[derive(Clone)]
pub struct ClickHouseStore {
    client: Client,
    config: ClickHouseConfig,
}

impl std::fmt::Debug for ClickHouseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClickHouseStore")
            .field("url", &self.config.url)
            .field("database", &self.config.database)
            .finish_non_exhaustive()
    }
}

/// A failed ClickHouse request: the server's own message, and whether to retry.
#[derive(Debug, thiserror::Error)]
#[error("clickhouse: {message}")]
pub struct ClickHouseError {
    pub message: String,
    pub retryable: bool,
    /// The least wait before a retry, when the server said it is overloaded.
    pub retry_after: Option<std::time::Duration>,
}

/// Server error codes that mean the data or the schema is wrong (bad syntax, unknown table or
/// column, type mismatch, unparsable input): the same batch would fail again. Every other
/// failure (overload, timeouts, replication or network trouble) is retried with backoff.
const PERMANENT_CODES: &[u32] = &[
    6, 16, 26, 27, 32, 33, 38, 41, 53, 60, 62, 69, 70, 72, 117, 128, 130,
];

/// Codes by which the server says it is overloaded (TOO_MANY_SIMULTANEOUS_QUERIES,
/// MEMORY_LIMIT_EXCEEDED, TOO_MANY_PARTS): ClickHouse sends no `Retry-After`, so the exporter
/// asks the driver for at least [`OVERLOAD_WAIT`] before the next attempt, giving merges time.
const OVERLOAD_CODES: &[u32] = &[202, 241, 252];
const OVERLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn classify(e: clickhouse::error::Error) -> ClickHouseError {
    let message = e.to_string();
    let code = message
        .split("Code: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u32>().ok());
    let retryable = !code.is_some_and(|c| PERMANENT_CODES.contains(&c));
    let retry_after = code
        .is_some_and(|c| OVERLOAD_CODES.contains(&c))
        .then_some(OVERLOAD_WAIT);
    ClickHouseError {
        message,
        retryable,
        retry_after,
    }
}

/// The insert deduplication token of `data` into `table`: SHA-256, whose definition never
/// changes, so that a batch left in the queue across an upgrade is still the same insert
/// (`std`'s `DefaultHasher` may change between Rust releases).
fn dedup_token(table: &str, data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(table.as_bytes());
    hash.update([0]);
    hash.update(data);
    format!(
        "{table}-{}-{}",
        hex::encode(&hash.finalize()[..16]),
        data.len()
    )
}

impl From<ClickHouseError> for ExportError {
    fn from(e: ClickHouseError) -> Self {
        if e.retryable {
            ExportError::Transient {
                message: e.message,
                retry_after: e.retry_after,
            }
        } else {
            ExportError::permanent(e.message)
        }
    }
}

impl ClickHouseStore {
    /// Connects and, with `create_schema`, creates the database and applies migrations.
    pub async fn open(config: ClickHouseConfig) -> Result<Self, ClickHouseError> {
        // As the client's default, plus `TCP_NODELAY`: a request's head and body are two writes,
        // and with Nagle the body waited for the server's delayed ACK (40 ms per query).
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_keepalive(Some(std::time::Duration::from_secs(60)));
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .pool_max_idle_per_host(if config.keep_alive { usize::MAX } else { 0 })
                .build(connector);
        let client = Client::with_http_client(http)
            .with_url(&config.url)
            .with_user(&config.user)
            .with_password(config.password.expose())
            .with_compression(clickhouse::Compression::Lz4)
            .with_validation(false);
        let store = Self { client, config };
        if store.config.create_schema {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies every migration not yet recorded; returns the names applied.
    pub async fn migrate(&self) -> Result<Vec<&'static str>, ClickHouseError> {
        self.migrate_up_to(u32::MAX).await
    }

    /// Applies the migrations not yet recorded up to version `last` (tests of upgrades start
    /// from an older schema).
    pub async fn migrate_up_to(&self, last: u32) -> Result<Vec<&'static str>, ClickHouseError> {
        for statement in schema::bootstrap(&self.config) {
            self.client
                .query(&statement)
                .execute()
                .await
                .map_err(classify)?;
        }
        let applied: Vec<u32> = self
            .client
            .query(&format!(
                "SELECT version FROM {}.schema_migrations FINAL",
                self.config.database
            ))
            .fetch_all::<u32>()
            .await
            .map_err(classify)?;
        let mut done = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) || *version > last {
                continue;
            }
            for statement in schema::statements(sql, &self.config) {
                self.client.query(&statement).execute().await.map_err(|e| {
                    let mut e = classify(e);
                    e.message = format!("migration {name}: {}", e.message);
                    e
                })?;
            }
            self.client
                .query(&format!(
                    "INSERT INTO {}.schema_migrations (version, name) VALUES ({version}, '{name}')",
                    self.config.database
                ))
                .execute()
                .await
                .map_err(classify)?;
            done.push(*name);
        }
        Ok(done)
    }

    pub fn database(&self) -> &str {
        &self.config.database
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One insert of pre-encoded rows, deduplicated by a token derived from the table and the
    /// bytes: the same batch retried is the same insert.
    async fn insert(
        &self,
        table: &str,
        columns: &[rowbinary::Column],
        data: Vec<u8>,
    ) -> Result<(), ClickHouseError> {
        let token = dedup_token(table, &data);
        let mut settings = format!(
            "insert_deduplication_token = '{token}', deduplicate_blocks_in_dependent_materialized_views = 1"
        );
        if self.config.async_insert {
            settings.push_str(
                ", async_insert = 1, wait_for_async_insert = 1, async_insert_deduplicate = 1",
            );
        }
        let sql = format!(
            "INSERT INTO {}.{table} ({}) SETTINGS {settings} FORMAT RowBinaryWithNamesAndTypes",
            self.config.database,
            rows::column_list(columns)
        );
        let mut insert = self
            .client
            .insert_formatted_with(sql)
            .with_timeouts(Some(self.config.timeout), Some(self.config.timeout));
        insert.send(data.into()).await.map_err(classify)?;
        insert.end().await.map_err(classify)
    }

    /// Writes one batch: its rows and the events processors derived from it.
    pub async fn write(&self, batch: &Batch) -> Result<(), ClickHouseError> {
        let project = &batch.ctx.project;
        match &batch.payload {
            Payload::Traces(rs) => {
                let spans = record::span_records(project, rs);
                if !spans.is_empty() {
                    self.insert("spans", rows::SPAN_COLUMNS, rows::encode_spans(&spans))
                        .await?;
                }
            }
            Payload::Logs(rl) => self.write_logs(project, rl).await?,
            Payload::Metrics(rm) => {
                let points = record::metric_rows(project, rm);
                if !points.is_empty() {
                    self.insert(
                        "metric_points",
                        rows::METRIC_COLUMNS,
                        rows::encode_metrics(&points),
                    )
                    .await?;
                }
            }
        }
        self.write_logs(project, &batch.events).await
    }

    async fn write_logs(
        &self,
        project: &str,
        resource_logs: &[llmscope_core::otlp::logs::v1::ResourceLogs],
    ) -> Result<(), ClickHouseError> {
        let (logs, anomalies) = record::log_rows(project, resource_logs);
        if !logs.is_empty() {
            self.insert("logs", rows::LOG_COLUMNS, rows::encode_logs(&logs))
                .await?;
        }
        if !anomalies.is_empty() {
            self.insert(
                "anomalies",
                rows::ANOMALY_COLUMNS,
                rows::encode_anomalies(&anomalies),
            )
            .await?;
        }
        Ok(())
    }
}

impl Exporter for ClickHouseStore {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        self.write(batch).await.map_err(ExportError::from)
    }
}

fn query_error(e: ClickHouseError) -> QueryError {
    QueryError(e.message)
}

impl QueryStore for ClickHouseStore {
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
            self.client
                .query("SELECT 1")
                .fetch_one::<u8>()
                .await
                .map(|_| ())
                .map_err(|e| query_error(classify(e)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deduplication_token_has_a_fixed_definition() {
        // Pinned (computed independently: SHA-256 of "spans", a zero byte, the rows): a token
        // that changed across releases would insert a re-sent batch twice.
        assert_eq!(
            dedup_token("spans", b"some rows"),
            "spans-907ec632f89ffe31a2100458cf22275b-9"
        );
        assert_ne!(
            dedup_token("logs", b"some rows"),
            dedup_token("spans", b"some rows")
        );
    }

    #[test]
    fn server_errors_are_classified_by_their_code() {
        let server = |text: &str| classify(clickhouse::error::Error::BadResponse(text.into()));
        let unknown_table =
            server("Code: 60. DB::Exception: Table llmscope.spans does not exist. (UNKNOWN_TABLE)");
        assert!(!unknown_table.retryable);
        assert!(
            unknown_table
                .message
                .contains("Table llmscope.spans does not exist")
        );
        assert!(
            !server(
                "Code: 27. DB::Exception: Cannot parse input (CANNOT_PARSE_INPUT_ASSERTION_FAILED)"
            )
            .retryable
        );
        assert!(server("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)").retryable);
        assert!(
            server("Code: 241. DB::Exception: Memory limit exceeded (MEMORY_LIMIT_EXCEEDED)")
                .retryable
        );
        assert!(server("connection refused").retryable);
        let parts: ExportError =
            server("Code: 252. DB::Exception: Too many parts (TOO_MANY_PARTS)").into();
        assert!(
            matches!(parts, ExportError::Transient { retry_after: Some(wait), .. } if wait == OVERLOAD_WAIT),
            "{parts:?}"
        );
        let refused: ExportError = server("connection refused").into();
        assert!(matches!(
            refused,
            ExportError::Transient {
                retry_after: None,
                ..
            }
        ));
        let export: ExportError = server("Code: 62. DB::Exception: Syntax error").into();
        assert!(!export.is_retryable());
    }
}
