use std::path::PathBuf;
use std::time::Duration;

use llmscope_core::config::{EncryptionKey, Secret};
use serde::Deserialize;

/// Configuration of the `sqlite` exporter and query store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Database file; its folder is created on start. Default: `./data/llmscope.db`.
    pub path: PathBuf,
    /// How long a write waits for a lock held by another connection. Default: `5s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub busy_timeout: Duration,
    /// Read connections kept open for the query API. Default: 4.
    pub read_connections: usize,
    /// SQLCipher key (64 hexadecimal characters, e.g. `${env:LLMSCOPE_SQLITE_KEY}`) that
    /// encrypts the database, its WAL and its temporary files. Default: none (not encrypted).
    pub encryption_key: Secret,
    /// A file holding the key instead (64 hexadecimal characters).
    pub encryption_key_file: Option<PathBuf>,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data/llmscope.db"),
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
            encryption_key: Secret::default(),
            encryption_key_file: None,
        }
    }
}

impl SqliteConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err("path: must not be empty".into());
        }
        if self.read_connections == 0 {
            return Err("read_connections: must be at least 1".into());
        }
        self.key().map(|_| ())
    }

    /// The configured SQLCipher key, if any.
    pub fn key(&self) -> Result<Option<EncryptionKey>, String> {
        EncryptionKey::configured(&self.encryption_key, self.encryption_key_file.as_deref())
    }
}
