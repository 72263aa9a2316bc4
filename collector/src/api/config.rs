use serde::Deserialize;

use crate::receiver::check_endpoint;

/// Configuration of the `api` extension: the query API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// `host:port` to listen on. Default: `127.0.0.1:4320`.
    pub endpoint: String,
    /// Id of the exporter whose store answers queries. Default: `sqlite`.
    pub store: String,
    /// Traces per page when the request names no `limit`. Default: 50.
    pub default_limit: usize,
    /// Largest `limit` a request may ask for. Default: 1000.
    pub max_limit: usize,
    /// Caching of analytics responses.
    pub cache: super::cache::CacheConfig,
    /// With API keys required, `/readyz` and `/metrics` answer only a key or the admin token
    /// (for an API reachable beyond loopback); `/healthz` stays open. Default: false.
    pub private_status: bool,
    /// Connections held at once; past it, a new one is closed at once (counted). Default: 1024.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers. Default: `10s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub header_read_timeout: std::time::Duration,
    /// `{cert_file, key_file}` (PEM) to serve TLS. Default: none (plain).
    pub tls: Option<crate::tls::TlsFiles>,
    /// The live stream, `/api/v1/stream`.
    pub stream: crate::stream::StreamConfig,
    /// Serve the web UI at `/`. Default: true.
    pub ui: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:4320".into(),
            store: "sqlite".into(),
            default_limit: 50,
            max_limit: 1000,
            cache: Default::default(),
            private_status: false,
            max_connections: crate::serve::MAX_CONNECTIONS,
            header_read_timeout: crate::serve::HEADER_READ_TIMEOUT,
            tls: None,
            stream: Default::default(),
            ui: true,
        }
    }
}

impl ApiConfig {
    pub fn validate(&self) -> Result<(), String> {
        check_endpoint(&self.endpoint).map_err(|e| format!("endpoint: {e}"))?;
        if let Some(t) = &self.tls {
            t.server_config().map_err(|e| format!("tls: {e}"))?;
        }
        self.stream.validate()?;
        if self.default_limit == 0 || self.default_limit > self.max_limit {
            return Err("default_limit: must be between 1 and max_limit".into());
        }
        Ok(())
    }
}
