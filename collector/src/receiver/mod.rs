//! The `otlp` receiver: OTLP over gRPC (TraceService, LogsService, MetricsService) and over HTTP
//! (`POST /v1/traces`, `/v1/logs`, `/v1/metrics`, protobuf or JSON, optionally gzip), per the
//! OTLP specification.
//!
//! Guarantees: a request is answered success only after its batch is in the pipeline's queue;
//! items with invalid ids are refused through `partial_success` and counted; malformed requests
//! get `400`/`INVALID_ARGUMENT` with what is wrong; a full pipeline gets the OTLP-retryable
//! `503`/`UNAVAILABLE`. Nothing a client sends can crash the process.

mod config;
mod grpc;
mod grpc_auth;
mod http;
mod signal;
mod validate;

use llmscope_core::telemetry::metrics;
use std::sync::Arc;

use llmscope_core::{Batch, BatchContext, Payload};

pub use config::{
    DEFAULT_MAX_REQUEST_BYTES, GrpcConfig, HttpConfig, OtlpReceiverConfig, Protocols,
    check_endpoint,
};
pub use grpc::serve as serve_grpc;
pub use http::router as http_router;
pub use signal::OtlpRequest;
pub use validate::drop_invalid;

use crate::auth::{AuthError, Authenticator, Principal};
use crate::limits::Limiter;
use crate::pipeline::{ConsumeError, Consumer};
use crate::telemetry::Telemetry;

/// Where one receiver sends each signal; `None` when no pipeline of that signal uses it.
#[derive(Clone, Default)]
pub struct Consumers {
    pub traces: Option<Arc<dyn Consumer>>,
    pub logs: Option<Arc<dyn Consumer>>,
    pub metrics: Option<Arc<dyn Consumer>>,
}

/// What happened to an accepted request: how many items were refused, and why.
#[derive(Debug, Default, PartialEq)]
pub struct Accepted {
    pub rejected: i64,
    pub message: String,
}

/// The transport-independent part of a receiver: authentication, validation, hand-off,
/// counting.
#[derive(Clone)]
pub struct Ingest {
    pub receiver: String,
    pub transport: &'static str,
    pub consumers: Consumers,
    pub telemetry: Telemetry,
    /// API keys, when required.
    pub auth: Option<Arc<Authenticator>>,
    /// Rate limits, when configured.
    pub limits: Option<Arc<Limiter>>,
}

/// Who a request is from: the project its data belongs to and the key that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub project: String,
    pub api_key_id: Option<String>,
}

impl Ingest {
    /// The caller behind the presented secret; with no auth configured, the default project.
    /// Refusals are counted.
    pub async fn caller(
        &self,
        presented: Option<&str>,
        from: Option<std::net::IpAddr>,
    ) -> Result<Caller, AuthError> {
        let Some(auth) = &self.auth else {
            return Ok(Caller {
                project: llmscope_core::DEFAULT_PROJECT.to_owned(),
                api_key_id: None,
            });
        };
        let result = match auth.authenticate_from(presented, from).await {
            Ok(Principal::Key { project, key_id }) => Ok(Caller {
                project,
                api_key_id: Some(key_id),
            }),
            // The admin token reads and manages; it does not send data.
            Ok(Principal::Admin) => Err(AuthError::Invalid),
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.refused_request(match e {
                AuthError::Unavailable => "auth_unavailable",
                _ => "unauthenticated",
            });
        }
        result
    }

    /// Validates and hands a decoded request to its pipelines.
    pub async fn ingest(
        &self,
        mut payload: Payload,
        caller: Caller,
    ) -> Result<Accepted, ConsumeError> {
        let signal = payload.signal();
        let consumer = match &payload {
            Payload::Traces(_) => &self.consumers.traces,
            Payload::Logs(_) => &self.consumers.logs,
            Payload::Metrics(_) => &self.consumers.metrics,
        };
        let Some(consumer) = consumer.clone() else {
            return Err(ConsumeError::Refused(format!(
                "this receiver is not in a {signal} pipeline"
            )));
        };
        let (accepted, reasons) = validate::drop_invalid(&mut payload);
        for (reason, items) in reasons {
            self.refused(signal, reason.label(), items);
        }
        let items = payload.item_count() as u64;
        if items == 0 {
            return Ok(accepted);
        }
        if let Some(limits) = &self.limits
            && let Err(l) = limits
                .check(&caller.project, caller.api_key_id.as_deref(), items)
                .await
        {
            self.refused(signal, "rate_limited", items);
            return Err(ConsumeError::Limited {
                message: format!(
                    "rate limit reached ({}); retry after {:?}",
                    l.what, l.retry_after
                ),
                retry_after: l.retry_after,
            });
        }
        let ctx = BatchContext {
            receiver: self.receiver.clone(),
            project: caller.project,
            api_key_id: caller.api_key_id,
            ..Default::default()
        };
        match consumer.consume(Batch::new(payload, ctx)).await {
            Ok(()) => {
                let labels = [
                    ("receiver", self.receiver.as_str()),
                    ("transport", self.transport),
                    ("signal", signal),
                ];
                self.telemetry
                    .counter(&metrics::RECEIVER_ACCEPTED_ITEMS, &labels)
                    .add(items);
                Ok(accepted)
            }
            Err(e) => {
                let reason = match e {
                    ConsumeError::Refused(_) => "processor_refused",
                    ConsumeError::Unavailable(_) => "unavailable",
                    ConsumeError::Limited { .. } => "rate_limited",
                };
                self.refused(signal, reason, items);
                Err(e)
            }
        }
    }

    /// Counts a request refused before decoding (malformed, too large, wrong media type).
    pub fn refused_request(&self, reason: &str) {
        let labels = [
            ("receiver", self.receiver.as_str()),
            ("transport", self.transport),
            ("reason", reason),
        ];
        self.telemetry
            .counter(&metrics::RECEIVER_REFUSED_REQUESTS, &labels)
            .add(1);
    }

    fn refused(&self, signal: &str, reason: &str, items: u64) {
        let labels = [
            ("receiver", self.receiver.as_str()),
            ("transport", self.transport),
            ("signal", signal),
            ("reason", reason),
        ];
        self.telemetry
            .counter(&metrics::RECEIVER_REFUSED_ITEMS, &labels)
            .add(items);
    }
}
