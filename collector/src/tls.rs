//! TLS for the listeners (OTLP/HTTP and the API are served by `serve`; OTLP/gRPC through
//! tonic): certificate and key from PEM files named in config, rustls with the ring provider.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

/// A listener's certificate (chain) and private key, PEM files.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TlsFiles {
    pub fn read(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        let read =
            |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        Ok((read(&self.cert_file)?, read(&self.key_file)?))
    }

    /// The rustls server config for these files; checks they hold a certificate and a key.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let (cert, key) = self.read()?;
        let certs = rustls_pemfile::certs(&mut &cert[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", self.cert_file.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", self.cert_file.display()));
        }
        let key = rustls_pemfile::private_key(&mut &key[..])
            .map_err(|e| format!("{}: {e}", self.key_file.display()))?
            .ok_or_else(|| format!("{}: no private key", self.key_file.display()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", self.cert_file.display()))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}
