use std::path::PathBuf;
use std::time::Duration;

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
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("./data/llmscope.db"),
            busy_timeout: Duration::from_secs(5),
            read_connections: 4,
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
        Ok(())
    }
}
