//! OTLP over HTTP/protobuf: `POST <endpoint>/v1/<signal>`, optionally gzip-compressed.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use llmscope_core::ExportError;

use super::{Compression, OtlpConfig, Rejected, Signal};

/// Largest response body read (a response is a partial success at most, or an error message).
const MAX_RESPONSE: usize = 4 << 20;

pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// The endpoint of each signal: traces, logs, metrics.
    uris: [Uri; 3],
    headers: Vec<(HeaderName, HeaderValue)>,
    gzip: bool,
    timeout: Duration,
}

impl HttpClient {
    pub fn new(config: &OtlpConfig) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(super::tls_config(config)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let base = config.endpoint.trim_end_matches('/');
        let uri = |signal: Signal| {
            format!("{base}{}", signal.http_path())
                .parse::<Uri>()
                .map_err(|e| format!("endpoint: {e}"))
        };
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            uris: [
                uri(Signal::Traces)?,
                uri(Signal::Logs)?,
                uri(Signal::Metrics)?,
            ],
            headers: headers(config)?,
            gzip: config.compression == Compression::Gzip,
            timeout: config.timeout,
        })
    }

    pub async fn send(&self, signal: Signal, body: Vec<u8>) -> Result<Rejected, ExportError> {
        let uri = &self.uris[signal as usize];
        let mut request = Request::post(uri.clone()).header(CONTENT_TYPE, "application/x-protobuf");
        let body = if self.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
            gzip(&body).map_err(|e| ExportError::permanent(format!("cannot compress: {e}")))?
        } else {
            body
        };
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ExportError::permanent(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                ExportError::transient(format!("cannot reach {uri}: {}", chain(&e)))
            })?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| ExportError::transient(format!("{uri}: response cut off: {e}")))?
                .to_bytes();
            Ok::<_, ExportError>((parts.status, parts.headers, body))
        };
        let (status, headers, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                ExportError::transient(format!("{uri}: no answer within {:?}", self.timeout))
            })??;
        if status.is_success() {
            return Ok(Rejected::decode(&body));
        }
        let message = format!(
            "{uri} answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(256)]).trim()
        );
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT
        ) {
            Err(ExportError::Transient {
                message,
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, SystemTime::now())),
            })
        } else {
            Err(ExportError::permanent(message))
        }
    }
}

/// The configured headers, checked (config validation already refused bad ones).
pub fn headers(config: &OtlpConfig) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    config
        .headers
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("headers: {name:?} is not a valid header name"))?;
            let mut value = HeaderValue::from_str(value.expose())
                .map_err(|_| format!("headers: the value of {name:?} is not valid"))?;
            value.set_sensitive(true);
            Ok((name, value))
        })
        .collect()
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body)?;
    encoder.finish()
}

/// An error with its causes, which hyper keeps out of its own message.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A `Retry-After` value: seconds, or an HTTP date (IMF-fixdate) from `now`.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.unix_timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
    }
}
