//! Notifications: the bodies (LLMScope's JSON, Slack's, Alertmanager's), Standard Webhooks
//! signatures, and one HTTP attempt with its outcome.
//!
//! Guarantees:
//! - A body is fixed when its transition is written; each attempt signs it afresh with the
//!   attempt's timestamp under the same `webhook-id`, so receivers can deduplicate retries.
//! - Unless `allow_private_targets`, no request reaches a loopback, private, link-local or
//!   otherwise non-public address: the check is on the addresses the name resolves to, the
//!   ones connected to, not on the name.
//! - Secrets never leave the signature: not in logs, errors or recorded attempts.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value as J, json};
use sha2::Sha256;

use super::eval::{Kind, Labels};
use super::rule::{Channel, Rule};
use crate::api::rfc3339;

/// What a notification says, before it is shaped for a channel.
pub struct Message<'a> {
    pub kind: Kind,
    pub rule_id: &'a str,
    pub project: &'a str,
    pub rule: &'a Rule,
    pub labels: &'a Labels,
    pub value: Option<f64>,
    pub started_ns: i64,
    pub at_ns: i64,
    /// Where the alert's history can be read.
    pub url: String,
}

/// The body for a channel.
pub fn body(channel: &Channel, m: &Message<'_>) -> String {
    let spec = &m.rule.spec;
    match channel {
        Channel::Webhook { .. } => json!({
            "type": m.kind.event_type(),
            "timestamp": rfc3339(m.at_ns),
            "rule": {"id": m.rule_id, "name": spec.name, "metric": spec.metric},
            "project": m.project,
            "series": m.labels,
            "value": m.value,
            "op": spec.op,
            "threshold": spec.threshold,
            "window": spec.window,
            "started_at": rfc3339(m.started_ns),
            "url": m.url,
        }),
        Channel::Slack { .. } => {
            let series = if m.labels.is_empty() {
                String::new()
            } else {
                let parts: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(" ({})", parts.join(", "))
            };
            let value = m.value.map_or_else(|| "no data".into(), |v| format!("{v}"));
            let head = match m.kind {
                Kind::Firing => "FIRING",
                Kind::Resolved => "RESOLVED",
                Kind::NoData => "NO DATA",
            };
            json!({"text": format!(
                "[{head}] {}{series}: {} = {value} ({} {} over {}) <{}|history>",
                spec.name, spec.metric.name(), spec.op.symbol(), spec.threshold, spec.window, m.url
            )})
        }
        Channel::Alertmanager { .. } => {
            let mut labels = serde_json::Map::new();
            labels.insert("alertname".into(), J::String(spec.name.clone()));
            labels.insert("project".into(), J::String(m.project.to_owned()));
            for (k, v) in m.labels {
                labels.insert(k.clone(), J::String(v.as_str().unwrap_or("").to_owned()));
            }
            let status = if m.kind == Kind::Resolved {
                "resolved"
            } else {
                "firing"
            };
            let ends = if m.kind == Kind::Resolved {
                rfc3339(m.at_ns)
            } else {
                "0001-01-01T00:00:00Z".into()
            };
            let alert = json!({
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": format!("{} {} {}", spec.metric.name(), spec.op.symbol(), spec.threshold),
                    "value": m.value.map(|v| v.to_string()).unwrap_or_default(),
                },
                "startsAt": rfc3339(m.started_ns),
                "endsAt": ends,
                "generatorURL": m.url,
                "fingerprint": super::webhook_id_for(m.rule_id, m.labels),
            });
            json!({
                "version": "4",
                "groupKey": format!("{}:{}", m.rule_id, super::eval::series_key(m.labels)),
                "truncatedAlerts": 0,
                "status": status,
                "receiver": "llmscope",
                "groupLabels": {"alertname": spec.name},
                "commonLabels": labels,
                "commonAnnotations": {},
                "externalURL": m.url,
                "alerts": [alert],
            })
        }
    }
    .to_string()
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (Standard Webhooks).
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{sig}")
}

/// Whether an address is one a webhook may reach without `allow_private_targets`.
pub fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// Resolves names, keeping only public addresses unless private targets are allowed.
#[derive(Clone)]
struct GuardedResolver {
    allow_private: bool,
}

type Resolved = std::vec::IntoIter<SocketAddr>;

impl tower::Service<Name> for GuardedResolver {
    type Response = Resolved;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Resolved, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| allow_private || public(a.ip()))
                .collect();
            if kept.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{name} resolves only to private addresses"),
                ));
            }
            Ok(kept.into_iter())
        })
    }
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered(u16),
    /// Worth retrying (5xx, 429, 408, timeouts, connection errors), after `retry_after` if the
    /// receiver said so.
    Retry {
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    },
    /// 410 Gone: the channel is disabled.
    Gone,
    /// Refused for good (another 4xx, an unreachable private target, a bad URL).
    Failed {
        status: Option<u16>,
        error: String,
    },
    /// Not sent: the target is not public.
    Refused(String),
}

pub struct Sender {
    client: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
    allow_private: bool,
    timeout: Duration,
}

impl Sender {
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, String> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver { allow_private });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let tls = llmscope_exporters::tls::client_config(
            llmscope_exporters::tls::TlsMode::VerifyFull,
            None,
        )
        .map_err(|e| format!("tls: {e}"))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            allow_private,
            timeout,
        })
    }

    /// Whether a URL may be a target: its host, when an address, must be public (names are
    /// checked when resolved, at each attempt).
    pub fn check_target(&self, url: &str) -> Result<(), String> {
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let host = uri.host().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let private = match host.parse::<IpAddr>() {
            Ok(ip) => !public(ip),
            Err(_) => host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost"),
        };
        if private && !self.allow_private {
            return Err(format!(
                "{host} is a private address; set extensions.alerts.allow_private_targets: true to allow it"
            ));
        }
        Ok(())
    }

    /// One attempt: POST `body`, signed when the channel has a secret.
    pub async fn send(
        &self,
        channel: &Channel,
        webhook_id: &str,
        body: &str,
        now_s: i64,
    ) -> Outcome {
        if let Err(reason) = self.check_target(channel.url()) {
            return Outcome::Refused(reason);
        }
        let mut request = Request::post(channel.url())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("llmscope/", env!("CARGO_PKG_VERSION")))
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", now_s.to_string());
        if let Some(key) = channel.signing_key() {
            request = request.header(
                "webhook-signature",
                signature(&key, webhook_id, now_s, body),
            );
        }
        let request = match request.body(Full::new(Bytes::from(body.to_owned()))) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Failed {
                    status: None,
                    error: format!("cannot build the request: {e}"),
                };
            }
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // Read (a bounded part of) the body so the connection can be reused.
            let _ = http_body_util::Limited::new(response.into_body(), 64 << 10)
                .collect()
                .await;
            Ok::<_, hyper_util::client::legacy::Error>((status, retry_after))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Outcome::Retry {
                status: None,
                error: format!("no answer within {:?}", self.timeout),
                retry_after: None,
            },
            Ok(Err(e)) => {
                let error = chain(&e);
                if error.contains("resolves only to private addresses") {
                    Outcome::Refused(error)
                } else {
                    Outcome::Retry {
                        status: None,
                        error,
                        retry_after: None,
                    }
                }
            }
            Ok(Ok((status, retry_after))) => classify(status, retry_after),
        }
    }
}

fn classify(status: StatusCode, retry_after: Option<Duration>) -> Outcome {
    let code = status.as_u16();
    if status.is_success() {
        Outcome::Delivered(code)
    } else if status == StatusCode::GONE {
        Outcome::Gone
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Outcome::Retry {
            status: Some(code),
            error: format!("answered {status}"),
            retry_after,
        }
    } else {
        Outcome::Failed {
            status: Some(code),
            error: format!("answered {status}"),
        }
    }
}

/// An error with its causes, for the record (URLs carry no secrets here: secrets are headers).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example in the Standard Webhooks spec's reference libraries.
        let key = base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"] {
            assert!(public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_by_the_addresses_they_resolve_to() {
        use std::str::FromStr as _;
        use tower::Service as _;
        let name = || Name::from_str("localhost").expect("name");
        let mut strict = GuardedResolver {
            allow_private: false,
        };
        let refused = strict.call(name()).await.expect_err("loopback refused");
        assert!(refused.to_string().contains("private"), "{refused}");
        let mut open = GuardedResolver {
            allow_private: true,
        };
        let found: Vec<SocketAddr> = open.call(name()).await.expect("allowed").collect();
        assert!(!found.is_empty() && found.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(
            classify(StatusCode::NO_CONTENT, None),
            Outcome::Delivered(204)
        );
        assert_eq!(classify(StatusCode::GONE, None), Outcome::Gone);
        assert!(matches!(
            classify(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(Duration::from_secs(3))
            ),
            Outcome::Retry {
                retry_after: Some(_),
                ..
            }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, None),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, None),
            Outcome::Failed { .. }
        ));
    }
}
