//! `sqlite`: the embedded default store. Spans, logs/events and metric points are written in one
//! transaction per batch to a WAL-mode database; the same store answers the query API.
//!
//! Guarantees: a batch is either fully written or not at all; a retried span replaces its earlier
//! copy rather than duplicating it; readers never block the writer (WAL).

mod config;
mod events;
mod migrate;
mod read;
mod summaries;
mod write;

use std::sync::{Arc, Mutex, MutexGuard};

use llmscope_core::config::EncryptionKey;
use llmscope_core::{Batch, ExportError, Exporter, Payload};
use rusqlite::{Connection, OpenFlags};

pub use config::SqliteConfig;
pub use migrate::{MIGRATIONS, migrate};

use crate::query::{
    AnomalyQuery, BoxFuture, EventQuery, EventRow, QueryError, QueryStore, ScoredCall,
    SummaryGroup, SummaryQuery, TracePage, TraceQuery,
};
use crate::record::{self, AnomalyRow, SpanRecord};

/// Builds `sqlite` exporters: a store for events, queries and metadata in one file.
pub struct Factory;

impl crate::factory::ExporterFactory for Factory {
    const TYPE: &'static str = "sqlite";
    const OFFERS: crate::factory::Offers = crate::factory::Offers {
        query: true,
        metadata: true,
        migrations: true,
    };
    type Config = SqliteConfig;

    fn validate(config: &SqliteConfig) -> Result<(), String> {
        config.validate()
    }

    async fn build(
        _id: &str,
        config: &SqliteConfig,
        _telemetry: &llmscope_core::telemetry::Telemetry,
    ) -> Result<crate::factory::Built, crate::factory::BuildError> {
        let store = SqliteStore::open(config.clone())?;
        Ok(crate::factory::Built::store(store.clone()).with_metadata(store))
    }

    async fn migrate(
        config: &SqliteConfig,
    ) -> Result<Vec<&'static str>, crate::factory::BuildError> {
        Ok(SqliteStore::open(config.clone())?.applied_migrations())
    }
}

/// Opening or migrating the database failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the folder of {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot make {path} readable by its owner only: {source}")]
    Permissions {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open SQLite database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot migrate SQLite database {path}: {source}")]
    Migrate {
        path: String,
        source: rusqlite::Error,
    },
    #[error("{0}")]
    Key(String),
    #[error(
        "SQLite database {path} is encrypted, or is no SQLite database: set encryption_key \
         (or encryption_key_file) to its key"
    )]
    KeyMissing { path: String },
    #[error(
        "SQLite database {path} is not encrypted but an encryption key is configured: encrypt \
         it first (otel-config/README.md, \"Encryption at rest\") or remove the key"
    )]
    NotEncrypted { path: String },
    #[error(
        "SQLite database {path} does not open with the configured encryption key (a wrong key?)"
    )]
    WrongKey { path: String },
}

/// One SQLite database: the exporter's writer and the query API's readers.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    config: SqliteConfig,
    key: Option<EncryptionKey>,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    applied: Vec<&'static str>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.config.path)
            .finish_non_exhaustive()
    }
}

/// The first bytes of every plain SQLite database.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Refuses an existing database whose encryption does not match the configuration, by its
/// header and without writing: a plain one with a key, an encrypted one (random bytes) without.
fn check_encryption(path: &std::path::Path, keyed: bool) -> Result<(), OpenError> {
    use std::io::Read as _;
    let mut header = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() {
        // Absent or shorter than a header: SQLite creates or refuses it itself.
        return Ok(());
    }
    let path = path.display().to_string();
    match (header == *PLAIN_HEADER, keyed) {
        (true, true) => Err(OpenError::NotEncrypted { path }),
        (false, false) => Err(OpenError::KeyMissing { path }),
        _ => Ok(()),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a connection half-used in a way SQLite itself
    // does not recover from (an open transaction is rolled back when dropped).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SqliteStore {
    /// Creates the folder and the database if needed, applies migrations, enables WAL. With an
    /// encryption key, the database is SQLCipher's; a wrong or missing key, or a key for a
    /// plain database, is refused before anything is written.
    pub fn open(config: SqliteConfig) -> Result<Self, OpenError> {
        let path = config.path.display().to_string();
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::Folder {
                path: path.clone(),
                source,
            })?;
        }
        let open_err = |source| OpenError::Open {
            path: path.clone(),
            source,
        };
        let key = config.key().map_err(OpenError::Key)?;
        check_encryption(&config.path, key.is_some())?;
        let created = !config.path.exists();
        let mut writer = Self::connect(&config, key.as_ref()).map_err(|source| {
            if key.is_some()
                && source.sqlite_error_code() == Some(rusqlite::ErrorCode::NotADatabase)
            {
                OpenError::WrongKey { path: path.clone() }
            } else {
                open_err(source)
            }
        })?;
        // A database this collector creates is readable by it alone (its WAL and shared-memory
        // files take the same mode); an existing one keeps the mode its owner gave it.
        #[cfg(unix)]
        if created {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&config.path, std::fs::Permissions::from_mode(0o600))
                .map_err(|source| OpenError::Permissions {
                    path: path.clone(),
                    source,
                })?;
        }
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(open_err)?;
        let applied = migrate(&mut writer).map_err(|source| OpenError::Migrate {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                key,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                applied,
            }),
        })
    }

    /// The migrations this `open` applied (empty when the schema was already current).
    pub fn applied_migrations(&self) -> Vec<&'static str> {
        self.inner.applied.clone()
    }

    /// A connection; with `key`, keyed (a raw key: no key derivation per connection) and
    /// checked by reading the schema.
    fn connect(config: &SqliteConfig, key: Option<&EncryptionKey>) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&config.path, flags)?;
        if let Some(key) = key {
            // SQLCipher would also print its own line to stderr on a wrong key; the error
            // returned says it in the collector's log.
            conn.pragma_update(None, "cipher_log_level", "NONE")?;
            conn.pragma_update(None, "key", format!("x'{}'", hex::encode(key.bytes())))?;
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        }
        conn.busy_timeout(config.busy_timeout)?;
        Ok(conn)
    }

    /// Writes one batch in one transaction.
    pub fn write(&self, batch: &Batch) -> rusqlite::Result<()> {
        let project = &batch.ctx.project;
        let mut conn = lock(&self.inner.writer);
        let tx = conn.transaction()?;
        match &batch.payload {
            Payload::Traces(rs) => {
                let spans = record::span_records(project, rs);
                let touched: summaries::Touched<'_> =
                    spans.iter().map(|s| s.trace_id.as_str()).collect();
                let before = summaries::before(&tx, project, &touched, &spans)?;
                write::insert_spans(&tx, &spans)?;
                summaries::refresh(&tx, project, &touched, before)?;
            }
            Payload::Logs(rl) => write_logs(&tx, project, rl)?,
            Payload::Metrics(rm) => {
                write::insert_metric_points(&tx, &record::metric_rows(project, rm))?
            }
        }
        write_logs(&tx, project, &batch.events)?;
        tx.commit()
    }

    /// Runs `f` on a pooled read connection on the blocking thread pool.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&inner.readers).pop();
            let conn = match pooled {
                Some(c) => c,
                None => Self::connect(&inner.config, inner.key.as_ref())
                    .map_err(|e| QueryError(e.to_string()))?,
            };
            let result = f(&conn).map_err(|e| QueryError(e.to_string()));
            let mut pool = lock(&inner.readers);
            if pool.len() < inner.config.read_connections {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| QueryError(format!("query task failed: {e}")))?
    }
}

fn write_logs(
    tx: &rusqlite::Transaction<'_>,
    project: &str,
    resource_logs: &[llmscope_core::otlp::logs::v1::ResourceLogs],
) -> rusqlite::Result<()> {
    let (logs, anomalies) = record::log_rows(project, resource_logs);
    write::insert_logs(tx, &logs)?;
    write::insert_anomalies(tx, &anomalies)
}

/// SQLite errors worth retrying: the database is busy or locked by another connection, or the
/// disk is full. Everything else (a constraint, a malformed value) will fail again.
fn classify(e: rusqlite::Error) -> ExportError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked, DiskFull, SystemIoFailure};
    match e.sqlite_error_code() {
        Some(DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure) => {
            ExportError::transient(e.to_string())
        }
        _ => ExportError::permanent(e.to_string()),
    }
}

impl Exporter for SqliteStore {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let store = self.clone();
        let batch = batch.clone();
        tokio::task::spawn_blocking(move || store.write(&batch).map_err(classify))
            .await
            .map_err(|e| ExportError::transient(format!("export task failed: {e}")))?
    }
}

impl QueryStore for SqliteStore {
    fn traces<'a>(&'a self, query: &'a TraceQuery) -> BoxFuture<'a, Result<TracePage, QueryError>> {
        let query = query.clone();
        Box::pin(self.read(move |c| read::traces(c, &query)))
    }

    fn trace<'a>(
        &'a self,
        project: &'a str,
        trace_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SpanRecord>>, QueryError>> {
        let (project, trace_id) = (project.to_owned(), trace_id.to_owned());
        Box::pin(self.read(move |c| read::trace(c, &project, &trace_id)))
    }

    fn summary<'a>(
        &'a self,
        query: &'a SummaryQuery,
    ) -> BoxFuture<'a, Result<Vec<SummaryGroup>, QueryError>> {
        let query = query.clone();
        Box::pin(self.read(move |c| read::summary(c, &query)))
    }

    fn anomalies<'a>(
        &'a self,
        query: &'a AnomalyQuery,
    ) -> BoxFuture<'a, Result<Vec<AnomalyRow>, QueryError>> {
        let query = query.clone();
        Box::pin(self.read(move |c| read::anomalies(c, &query)))
    }

    fn events<'a>(
        &'a self,
        query: &'a EventQuery,
    ) -> BoxFuture<'a, Result<Vec<EventRow>, QueryError>> {
        let query = query.clone();
        Box::pin(self.read(move |c| events::events(c, &query)))
    }

    fn scored_calls<'a>(
        &'a self,
        query: &'a SummaryQuery,
        score: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ScoredCall>, QueryError>> {
        let (query, score) = (query.clone(), score.to_owned());
        Box::pin(self.read(move |c| events::scored_calls(c, &query, &score)))
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), QueryError>> {
        Box::pin(self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))))
    }
}

#[cfg(test)]
mod tests;
