//! The metadata store: projects, API keys and alerts ([`alerts`]), one interface with two
//! implementations, SQLite (the default, in the same database file as the events) and
//! PostgreSQL. Keys are never stored: only their SHA-256 hash, looked up by hash.

pub mod alerts;
mod alerts_postgres;
mod alerts_sqlite;
mod postgres;
mod sqlite;

pub use alerts::AlertStore;

use crate::query::BoxFuture;

/// A metadata operation failed; the message is for the log.
#[derive(Debug, thiserror::Error)]
#[error("metadata store: {0}")]
pub struct MetadataError(pub String);

pub type Result<T, E = MetadataError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub created_at_ns: i64,
}

/// An API key as stored: everything but the key itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub project: String,
    pub name: String,
    /// The key's first characters, to recognise it in lists.
    pub display_prefix: String,
    pub key_sha256: [u8; 32],
    pub created_at_ns: i64,
    pub last_used_at_ns: Option<i64>,
    pub revoked_at_ns: Option<i64>,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("project", &self.project)
            .field("name", &self.name)
            .field("display_prefix", &self.display_prefix)
            .field("revoked", &self.revoked_at_ns.is_some())
            .finish_non_exhaustive()
    }
}

pub trait MetadataStore: AlertStore {
    /// Creates the project unless it exists.
    fn ensure_project<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        now_ns: i64,
    ) -> BoxFuture<'a, Result<()>>;

    fn projects(&self) -> BoxFuture<'_, Result<Vec<Project>>>;

    /// Stores a new key (its project must exist).
    fn create_key<'a>(&'a self, key: &'a ApiKey) -> BoxFuture<'a, Result<()>>;

    /// The key with this hash, revoked or not.
    fn key_by_hash<'a>(&'a self, sha256: &'a [u8; 32]) -> BoxFuture<'a, Result<Option<ApiKey>>>;

    /// Every key, or a project's, oldest first.
    fn keys<'a>(&'a self, project: Option<&'a str>) -> BoxFuture<'a, Result<Vec<ApiKey>>>;

    /// Marks a key revoked; `false` when there is no such key.
    fn revoke_key<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<bool>>;

    /// Records that a key was used.
    fn touch_key<'a>(&'a self, id: &'a str, now_ns: i64) -> BoxFuture<'a, Result<()>>;
}

fn hash_of(bytes: &[u8]) -> Result<[u8; 32]> {
    bytes
        .try_into()
        .map_err(|_| MetadataError(format!("stored key hash has {} bytes, not 32", bytes.len())))
}
