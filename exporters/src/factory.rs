//! Exporter factories: each exporter folder offers one [`ExporterFactory`], which says what the
//! built exporter offers besides taking batches (a query store for the API, a metadata store for
//! API keys, schema migrations). Exporters may be write-only (`otlp`, `debug`, `nop`).

use std::future::Future;
use std::sync::Arc;

use llmscope_core::telemetry::Telemetry;
use llmscope_core::{BoxFuture, DynExporter, Exporter, Settings};

use crate::metadata::MetadataStore;
use crate::query::QueryStore;

/// What an exporter offers besides taking batches; known before it is built, so that config
/// checks can say "`api.store` names an exporter that answers no queries".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offers {
    /// Answers the query API ([`QueryStore`]).
    pub query: bool,
    /// Keeps projects and API keys ([`MetadataStore`]).
    pub metadata: bool,
    /// Has a schema that `llmscope migrate` applies.
    pub migrations: bool,
}

impl Offers {
    /// Takes batches and nothing more.
    pub const WRITE_ONLY: Self = Self {
        query: false,
        metadata: false,
        migrations: false,
    };
}

/// A built exporter and what it offers.
pub struct Built {
    pub exporter: Arc<dyn DynExporter>,
    pub query: Option<Arc<dyn QueryStore>>,
    pub metadata: Option<Arc<dyn MetadataStore>>,
    /// Background upkeep the backend needs while the collector runs (PostgreSQL partitions);
    /// the service spawns them and stops them at shutdown.
    pub workers: Vec<BoxFuture<'static, ()>>,
}

impl Built {
    /// An exporter that only takes batches.
    pub fn write_only(exporter: impl Exporter) -> Self {
        Self {
            exporter: Arc::new(exporter),
            query: None,
            metadata: None,
            workers: Vec::new(),
        }
    }

    /// A store that takes batches and answers the query API.
    pub fn store<S: Exporter + QueryStore + Clone>(store: S) -> Self {
        Self {
            query: Some(Arc::new(store.clone())),
            ..Self::write_only(store)
        }
    }

    /// These with `metadata` as the metadata store.
    pub fn with_metadata(self, metadata: impl MetadataStore) -> Self {
        Self {
            metadata: Some(Arc::new(metadata)),
            ..self
        }
    }
}

/// Why an exporter could not be built or migrated; the message is for the operator.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

/// Builds one kind of exporter.
pub trait ExporterFactory: Send + Sync + 'static {
    /// The type name in config, the part of an id before `/` (`otlp`, `otlp/tempo`).
    const TYPE: &'static str;
    /// What every exporter of this kind offers. Default: write-only.
    const OFFERS: Offers = Offers::WRITE_ONLY;
    type Config: Settings;

    /// Checks what deserializing cannot; a message starts with the field it is about
    /// (`field: what is wrong`).
    fn validate(_config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// Opens the backend (creating and migrating its schema if configured to). `id` is the
    /// component id, for logs and counters.
    fn build(
        id: &str,
        config: &Self::Config,
        telemetry: &Telemetry,
    ) -> impl Future<Output = Result<Built, BuildError>> + Send;

    /// Applies the schema migrations (`llmscope migrate`); returns the names applied.
    fn migrate(
        _config: &Self::Config,
    ) -> impl Future<Output = Result<Vec<&'static str>, BuildError>> + Send {
        async { Ok(Vec::new()) }
    }
}
