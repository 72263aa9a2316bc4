use serde::{Deserialize, Deserializer};

/// Configuration of the `otlp` receiver, as in the OpenTelemetry Collector.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    /// The protocols to serve. Default: both, on their default endpoints. When `protocols` is
    /// given, only the protocols listed run (`grpc:` with no value runs gRPC with defaults).
    pub protocols: Protocols,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    #[serde(default, deserialize_with = "present")]
    pub grpc: Option<GrpcConfig>,
    #[serde(default, deserialize_with = "present")]
    pub http: Option<HttpConfig>,
}

impl Default for OtlpReceiverConfig {
    fn default() -> Self {
        Self {
            protocols: Protocols {
                grpc: Some(GrpcConfig::default()),
                http: Some(HttpConfig::default()),
            },
        }
    }
}

/// A key that is present enables its section, even with no value (`grpc:`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

/// 20 MiB, the default request size limit of both protocols.
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 20 * 1024 * 1024;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// `host:port` to listen on. Default: `127.0.0.1:4317`.
    pub endpoint: String,
    /// Largest request accepted, in MiB, after decompression. Default: 20.
    pub max_recv_msg_size_mib: u64,
    /// Requests in flight at once on one connection (HTTP/2 `MAX_CONCURRENT_STREAMS`, announced
    /// to clients). Default: 32.
    pub max_concurrent_streams: u32,
    /// Connections held at once; past it, a new one is closed at once (counted). Default: 1024.
    pub max_connections: usize,
    /// `{cert_file, key_file}` (PEM) to serve TLS. Default: none (plain).
    pub tls: Option<crate::tls::TlsFiles>,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:4317".into(),
            max_recv_msg_size_mib: DEFAULT_MAX_REQUEST_BYTES / (1024 * 1024),
            max_concurrent_streams: 32,
            max_connections: crate::serve::MAX_CONNECTIONS,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `host:port` to listen on. Default: `127.0.0.1:4318`.
    pub endpoint: String,
    /// Largest request body accepted, in bytes, checked both as sent and after gzip
    /// decompression. Default: 20971520 (20 MiB).
    pub max_request_body_size: u64,
    /// Connections held at once; past it, a new one is closed at once (counted). Default: 1024.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers. Default: `10s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub header_read_timeout: std::time::Duration,
    /// `{cert_file, key_file}` (PEM) to serve TLS. Default: none (plain).
    pub tls: Option<crate::tls::TlsFiles>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            endpoint: "127.0.0.1:4318".into(),
            max_request_body_size: DEFAULT_MAX_REQUEST_BYTES,
            max_connections: crate::serve::MAX_CONNECTIONS,
            header_read_timeout: crate::serve::HEADER_READ_TIMEOUT,
            tls: None,
        }
    }
}

/// Checks an endpoint is `host:port` with a valid port.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| format!("{endpoint:?} is not host:port"))?;
    if host.is_empty() {
        return Err(format!(
            "{endpoint:?} has no host; use 0.0.0.0:{port} to listen everywhere"
        ));
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| format!("{endpoint:?} has an invalid port"))
}

impl OtlpReceiverConfig {
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.protocols;
        if p.grpc.is_none() && p.http.is_none() {
            return Err("protocols: at least one of grpc and http is required".into());
        }
        if let Some(g) = &p.grpc {
            check_endpoint(&g.endpoint).map_err(|e| format!("protocols.grpc.endpoint: {e}"))?;
            if g.max_recv_msg_size_mib == 0 {
                return Err("protocols.grpc.max_recv_msg_size_mib: must be at least 1".into());
            }
            if g.max_concurrent_streams == 0 {
                return Err("protocols.grpc.max_concurrent_streams: must be at least 1".into());
            }
            if let Some(t) = &g.tls {
                t.server_config()
                    .map_err(|e| format!("protocols.grpc.tls: {e}"))?;
            }
        }
        if let Some(h) = &p.http {
            check_endpoint(&h.endpoint).map_err(|e| format!("protocols.http.endpoint: {e}"))?;
            if h.max_request_body_size == 0 {
                return Err("protocols.http.max_request_body_size: must be at least 1".into());
            }
            if let Some(t) = &h.tls {
                t.server_config()
                    .map_err(|e| format!("protocols.http.tls: {e}"))?;
            }
        }
        Ok(())
    }
}
