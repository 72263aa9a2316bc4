use std::path::PathBuf;
use std::time::Duration;

use llmscope_core::config::Secret;
use serde::Deserialize;

/// Configuration of the `postgres` exporter and query store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL without the password, e.g. `postgres://llmscope@db:5432/llmscope`.
    /// Default: `postgres://postgres@127.0.0.1:5432/postgres`.
    pub url: String,
    /// Password; use `${env:POSTGRES_PASSWORD}`. Default: none (trust or the URL's).
    pub password: Secret,
    /// `disable`, `require` (encrypted, certificate not checked) or `verify-full` (certificate
    /// checked against the system's roots and `ca_file`, with the host name). Default: `disable`.
    pub tls: crate::tls::TlsMode,
    /// PEM file of extra trusted certificates for `verify-full`. Default: none.
    pub ca_file: Option<PathBuf>,
    /// Pooled connections. Default: 8.
    pub pool_size: usize,
    /// Apply `sql/postgres/` migrations on start. Default: true.
    pub create_schema: bool,
    /// Days of spans and logs kept; older daily partitions are dropped. Default: 30.
    pub retention_days: u32,
    /// Daily partitions created ahead of today. Default: 3.
    pub partitions_ahead: u32,
    /// Timeout of one statement. Default: `30s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub timeout: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@127.0.0.1:5432/postgres".into(),
            password: Secret::default(),
            tls: crate::tls::TlsMode::Disable,
            ca_file: None,
            pool_size: 8,
            create_schema: true,
            retention_days: 30,
            partitions_ahead: 3,
            timeout: Duration::from_secs(30),
        }
    }
}

impl PostgresConfig {
    pub fn validate(&self) -> Result<(), String> {
        let parsed: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| format!("url: not a PostgreSQL connection URL ({e})"))?;
        if parsed.get_password().is_some() {
            return Err("url: put the password in `password` (${env:VAR}), not in the URL".into());
        }
        if self.ca_file.is_some() && self.tls != crate::tls::TlsMode::VerifyFull {
            return Err("ca_file: only used with tls: verify-full".into());
        }
        if self.pool_size == 0 {
            return Err("pool_size: must be at least 1".into());
        }
        if self.retention_days == 0 {
            return Err("retention_days: must be at least 1".into());
        }
        Ok(())
    }
}
