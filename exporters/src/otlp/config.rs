use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use llmscope_core::config::Secret;
use serde::Deserialize;

/// How the `otlp` exporter sends (`exporters.otlp[/name]`). The names are the OpenTelemetry
/// Collector's `otlp` and `otlphttp` exporters'.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpConfig {
    /// Where to send: `http://host:4317` or `https://...`. For `http/protobuf` the signal's path
    /// (`/v1/traces`, `/v1/logs`, `/v1/metrics`) is appended to it. Required.
    pub endpoint: String,
    /// `grpc` or `http/protobuf`. Default: `grpc`.
    pub protocol: Protocol,
    /// `gzip` or `none`. Default: `gzip`.
    pub compression: Compression,
    /// Sent with every request (gRPC metadata or HTTP headers), such as
    /// `authorization: "Bearer ${env:LLMSCOPE_API_KEY}"`. Values are secrets: never logged.
    pub headers: BTreeMap<String, Secret>,
    /// One request's deadline, connecting included. Default: `10s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub timeout: Duration,
    pub tls: OtlpTls,
}

/// TLS for `https://` endpoints: the server's certificate must chain to the system's roots or
/// to `ca_file`, and name the host.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpTls {
    /// PEM file of certificates to trust besides the system's. Default: none.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    #[default]
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            protocol: Protocol::Grpc,
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(10),
            tls: OtlpTls::default(),
        }
    }
}

impl OtlpConfig {
    /// Messages start with the field they are about.
    pub fn validate(&self) -> Result<(), String> {
        if self.endpoint.trim().is_empty() {
            return Err(
                "endpoint: required: the URL to send to, such as http://gateway:4317".into(),
            );
        }
        let uri: hyper::Uri = self
            .endpoint
            .parse()
            .map_err(|e| format!("endpoint: {:?} is not a URL ({e})", self.endpoint))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "endpoint: {:?} must be a URL such as http://gateway:4317 or https://gateway:4318",
                self.endpoint
            ));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            // A URL is logged with errors: credentials belong in `headers`, which never are.
            return Err(
                "endpoint: must not hold credentials; send them in `headers` (authorization)"
                    .into(),
            );
        }
        if self.timeout.is_zero() {
            return Err("timeout: must be more than 0".into());
        }
        for (name, value) in &self.headers {
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("headers: {name:?} is not a valid header name"));
            }
            if hyper::header::HeaderValue::from_str(value.expose()).is_err() {
                // The value is a secret: say which header, never what it holds.
                return Err(format!(
                    "headers: the value of {name:?} is not a valid header value"
                ));
            }
        }
        if self.tls.ca_file.is_some() && uri.scheme_str() != Some("https") {
            return Err("tls: ca_file is only used with an https:// endpoint".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> OtlpConfig {
        serde_yaml::from_str(yaml).expect("config")
    }

    #[test]
    fn endpoints_must_be_urls_and_secrets_stay_hidden() {
        let ok = parse("endpoint: http://gateway:4317\nheaders: {authorization: Bearer sk-secret}");
        assert_eq!(ok.validate(), Ok(()));
        assert!(!format!("{ok:?}").contains("sk-secret"));
        for bad in [
            "gateway:4317",
            "",
            "ftp://x:1",
            "http://user:pw@gateway:4317",
        ] {
            let config = OtlpConfig {
                endpoint: bad.into(),
                ..OtlpConfig::default()
            };
            let error = config.validate().expect_err(bad);
            assert!(error.starts_with("endpoint:"), "{error}");
        }
        let bad_header = parse("endpoint: http://g:1\nheaders: {authorization: \"a\\nb-secret\"}");
        let error = bad_header.validate().expect_err("newline in a header");
        assert!(
            error.starts_with("headers:") && !error.contains("secret"),
            "{error}"
        );
        let http = parse("endpoint: https://g:4318\nprotocol: http/protobuf\ncompression: none");
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        assert_eq!(http.compression, Compression::None);
    }
}
