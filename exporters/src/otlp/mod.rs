//! `otlp`: forwards traces, logs and metrics to another OTLP endpoint (a central LLMScope, an
//! OpenTelemetry Collector, Tempo) over gRPC or HTTP/protobuf, gzip-compressed, with headers
//! such as `authorization`, TLS with an extra CA file, and a per-request timeout.
//!
//! Guarantees:
//! - What is sent is what the processors left (redacted): resource, scope and every attribute
//!   and event as they are. A batch's derived events (anomalies) go as a logs request first.
//! - The request is encoded once from the batch, never copied into a message first.
//! - Errors say whether the driver should retry: HTTP 429, 502, 503, 504 and gRPC `UNAVAILABLE`,
//!   `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`, `ABORTED`, `CANCELLED`, `OUT_OF_RANGE`,
//!   `DATA_LOSS`, time-outs and connection failures are transient and carry the server's
//!   `Retry-After` / `RetryInfo`; every other refusal is permanent (dead-lettered). A partial
//!   success is an accepted export whose rejected items are counted and logged.
//! - Nothing connects at start: a gateway that is down only makes exports wait in the queue.

mod config;
mod grpc;
mod http;

use llmscope_core::telemetry::metrics;
use llmscope_core::telemetry::{Counter, Telemetry};
use llmscope_core::{Batch, ExportError, Exporter, Payload};
use prost::Message;

pub use config::{Compression, OtlpConfig, OtlpTls, Protocol};

use crate::factory::{BuildError, Built, ExporterFactory};

/// The OTLP signals, with what each one's request and response are called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
            Signal::Metrics => "/v1/metrics",
        }
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }
}

/// The items a server said it rejected in a partial success, with its message.
#[derive(Debug, Default, PartialEq)]
pub struct Rejected {
    pub items: u64,
    pub message: String,
}

/// Decodes an export response body into what it rejected. Every signal's response has the
/// same shape: field 1 a partial success of (rejected count, error message).
#[derive(Clone, PartialEq, prost::Message)]
struct ExportResponse {
    #[prost(message, optional, tag = "1")]
    partial_success: Option<PartialSuccess>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PartialSuccess {
    #[prost(int64, tag = "1")]
    rejected: i64,
    #[prost(string, tag = "2")]
    error_message: String,
}

impl Rejected {
    fn decode(body: &[u8]) -> Self {
        match ExportResponse::decode(body) {
            Ok(ExportResponse {
                partial_success: Some(p),
            }) => Self {
                items: u64::try_from(p.rejected).unwrap_or(0),
                message: p.error_message,
            },
            _ => Self::default(),
        }
    }
}

/// The export request of `items` (resource spans, logs or metrics: field 1 of every request),
/// encoded straight from the batch.
fn encode_request<M: Message>(items: &[M]) -> Vec<u8> {
    let len = items
        .iter()
        .map(|m| prost::encoding::message::encoded_len(1, m))
        .sum();
    let mut buf = Vec::with_capacity(len);
    for m in items {
        prost::encoding::message::encode(1, m, &mut buf);
    }
    buf
}

enum Transport {
    Grpc(grpc::GrpcClient),
    Http(Box<http::HttpClient>),
}

/// Sends batches to one OTLP endpoint.
pub struct OtlpExporter {
    id: String,
    transport: Transport,
    rejected: Counter,
}

impl OtlpExporter {
    pub fn new(id: &str, config: &OtlpConfig, telemetry: &Telemetry) -> Result<Self, String> {
        let transport = match config.protocol {
            Protocol::Grpc => Transport::Grpc(grpc::GrpcClient::new(config)?),
            Protocol::HttpProtobuf => Transport::Http(Box::new(http::HttpClient::new(config)?)),
        };
        Ok(Self {
            id: id.to_owned(),
            transport,
            rejected: telemetry.counter(&metrics::EXPORTER_REJECTED_ITEMS, &[("exporter", id)]),
        })
    }

    async fn send(&self, signal: Signal, body: Vec<u8>) -> Result<(), ExportError> {
        let rejected = match &self.transport {
            Transport::Grpc(client) => client.send(signal, body).await?,
            Transport::Http(client) => client.send(signal, body).await?,
        };
        if rejected.items > 0 || !rejected.message.is_empty() {
            self.rejected.add(rejected.items);
            tracing::warn!(exporter = %self.id, rejected = rejected.items, message = %rejected.message, "the endpoint accepted the export in part");
        }
        Ok(())
    }
}

impl Exporter for OtlpExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        if !batch.events.is_empty() {
            self.send(Signal::Logs, encode_request(&batch.events))
                .await?;
        }
        let (signal, body) = match &batch.payload {
            Payload::Traces(rs) => (Signal::Traces, encode_request(rs)),
            Payload::Logs(rl) => (Signal::Logs, encode_request(rl)),
            Payload::Metrics(rm) => (Signal::Metrics, encode_request(rm)),
        };
        self.send(signal, body).await
    }
}

/// Builds `otlp` exporters.
pub struct Factory;

impl ExporterFactory for Factory {
    const TYPE: &'static str = "otlp";
    type Config = OtlpConfig;

    fn validate(config: &OtlpConfig) -> Result<(), String> {
        config.validate()
    }

    async fn build(
        id: &str,
        config: &OtlpConfig,
        telemetry: &Telemetry,
    ) -> Result<Built, BuildError> {
        Ok(Built::write_only(OtlpExporter::new(id, config, telemetry)?))
    }
}

/// The rustls config for an endpoint: the system's roots and `ca_file`.
fn tls_config(config: &OtlpConfig) -> Result<rustls::ClientConfig, String> {
    crate::tls::client_config(
        crate::tls::TlsMode::VerifyFull,
        config.tls.ca_file.as_deref(),
    )
    .map_err(|e| format!("tls: {e}"))
}

#[cfg(test)]
mod tests {
    use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use llmscope_core::test_util::{kv, span, traces};

    use super::*;

    #[test]
    fn a_request_encoded_from_the_batch_is_the_request_prost_would_encode() {
        let batch = traces("svc", vec![span(1, 1, "chat", vec![kv("k", "v")])]);
        let Payload::Traces(rs) = &batch.payload else {
            unreachable!()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: rs.clone(),
        };
        assert_eq!(encode_request(rs), request.encode_to_vec());
    }

    #[test]
    fn a_partial_success_says_how_many_were_rejected() {
        use llmscope_core::otlp::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            Rejected::decode(&body),
            Rejected {
                items: 3,
                message: "too old".into()
            }
        );
        assert_eq!(Rejected::decode(b""), Rejected::default());
    }
}
