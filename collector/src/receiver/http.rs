//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs`, `/v1/metrics` with `application/x-protobuf` or
//! `application/json` bodies, optionally `Content-Encoding: gzip`. Responses use the request's
//! encoding; errors carry a `google.rpc.Status` in it.

use std::io::Read;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use llmscope_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use llmscope_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::Serialize;

use super::{Ingest, OtlpRequest};
use crate::pipeline::ConsumeError;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// An OTLP/HTTP failure: the HTTP status, the matching gRPC code, a message for the client.
struct Failure {
    status: StatusCode,
    code: i32,
    message: String,
    reason: &'static str,
    /// Sent as `Retry-After` (whole seconds, at least 1) with 429 and 503.
    retry_after: Option<std::time::Duration>,
}

impl Failure {
    fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: 3,
            message: message.into(),
            reason,
            retry_after: None,
        }
    }
}

fn respond(encoding: Encoding, status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    response
}

fn failure_response(encoding: Encoding, f: Failure) -> Response {
    let status = RpcStatus {
        code: f.code,
        message: f.message,
    };
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&status).unwrap_or_default(),
    };
    let mut response = respond(encoding, f.status, body);
    if f.status == StatusCode::SERVICE_UNAVAILABLE || f.status == StatusCode::TOO_MANY_REQUESTS {
        let secs = f
            .retry_after
            .map_or(1, |d| d.as_secs_f64().ceil().max(1.0) as u64);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

#[derive(Clone)]
struct HttpState {
    ingest: Ingest,
    max_body: usize,
}

/// The OTLP/HTTP routes for the signals `ingest` has consumers for.
pub fn router(ingest: Ingest, max_body: usize) -> Router {
    let mut router = Router::new();
    if ingest.consumers.traces.is_some() {
        router = router
            .route(
                "/v1/traces",
                post(handle::<ExportTraceServiceRequest, false>),
            )
            // Langfuse's OTel-based SDKs send here, with the key as the Basic auth password.
            .route(
                "/api/public/otel/v1/traces",
                post(handle::<ExportTraceServiceRequest, true>),
            );
    }
    if ingest.consumers.logs.is_some() {
        router = router.route("/v1/logs", post(handle::<ExportLogsServiceRequest, false>));
    }
    if ingest.consumers.metrics.is_some() {
        router = router.route(
            "/v1/metrics",
            post(handle::<ExportMetricsServiceRequest, false>),
        );
    }
    router.with_state(HttpState { ingest, max_body })
}

async fn handle<R: OtlpRequest, const BASIC: bool>(
    State(state): State<HttpState>,
    client: Option<axum::Extension<crate::serve::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let encoding = match media_type(&headers) {
        Ok(e) => e,
        Err(f) => {
            state.ingest.refused_request(f.reason);
            return failure_response(Encoding::Json, f);
        }
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = crate::auth::presented(header("authorization"), header("x-api-key"), BASIC);
    let from = client.map(|c| c.0.0.ip());
    let caller = match state.ingest.caller(presented.as_deref(), from).await {
        Ok(c) => c,
        Err(e) => {
            let (status, code) = match e {
                crate::auth::AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, 14),
                _ => (StatusCode::UNAUTHORIZED, 16),
            };
            let f = Failure {
                status,
                code,
                message: e.to_string(),
                reason: "unauthenticated",
                retry_after: None,
            };
            return failure_response(encoding, f);
        }
    };
    match decode_and_ingest::<R>(&state, &headers, body, encoding, caller).await {
        Ok(response) => {
            let bytes = match encoding {
                Encoding::Protobuf => response.encode_to_vec(),
                Encoding::Json => json_without_nulls(&response),
            };
            respond(encoding, StatusCode::OK, bytes)
        }
        Err(f) => {
            state.ingest.refused_request(f.reason);
            failure_response(encoding, f)
        }
    }
}

/// OTLP/JSON omits unset fields: a full success is `{}`, not `{"partialSuccess":null}`.
fn json_without_nulls(response: &impl Serialize) -> Vec<u8> {
    let mut value = serde_json::to_value(response).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

fn media_type(headers: &HeaderMap) -> Result<Encoding, Failure> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        PROTOBUF => Ok(Encoding::Protobuf),
        JSON => Ok(Encoding::Json),
        _ => Err(Failure {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: 3,
            message: format!(
                "unsupported content type {raw:?}; OTLP/HTTP accepts {PROTOBUF} and {JSON}"
            ),
            reason: "unsupported_media_type",
            retry_after: None,
        }),
    }
}

async fn decode_and_ingest<R: OtlpRequest>(
    state: &HttpState,
    headers: &HeaderMap,
    body: Body,
    encoding: Encoding,
    caller: super::Caller,
) -> Result<R::Response, Failure> {
    let too_large = || Failure {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: 8,
        message: format!(
            "request body is larger than the limit of {} bytes",
            state.max_body
        ),
        reason: "too_large",
        retry_after: None,
    };
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            return Err(Failure {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: 3,
                message: format!("unsupported content encoding {other:?}; use gzip or none"),
                reason: "unsupported_encoding",
                retry_after: None,
            });
        }
    };
    let raw: Bytes = match Limited::new(body, state.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large());
        }
        Err(e) => {
            return Err(Failure::bad_request(
                "read_error",
                format!("cannot read the request body: {e}"),
            ));
        }
    };
    let bytes = if gzip {
        // Decompress at most one byte past the limit: a gzip bomb costs us no more than the limit.
        let mut out = Vec::new();
        let limit = state.max_body as u64 + 1;
        flate2::read::GzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out)
            .map_err(|e| Failure::bad_request("bad_gzip", format!("invalid gzip body: {e}")))?;
        if out.len() > state.max_body {
            return Err(too_large());
        }
        Bytes::from(out)
    } else {
        raw
    };
    let request = match encoding {
        Encoding::Protobuf => R::decode(bytes).map_err(|e| {
            Failure::bad_request("malformed", format!("malformed OTLP protobuf: {e}"))
        })?,
        Encoding::Json => llmscope_core::otlp_json::from_slice::<R>(&bytes)
            .map_err(|e| Failure::bad_request("malformed", format!("malformed OTLP/JSON: {e}")))?,
    };
    match state.ingest.ingest(request.payload(), caller).await {
        Ok(accepted) => Ok(R::response(accepted)),
        Err(ConsumeError::Refused(m)) => Err(Failure::bad_request("refused", m)),
        Err(ConsumeError::Unavailable(m)) => Err(Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: 14,
            message: m,
            reason: "unavailable",
            retry_after: None,
        }),
        Err(ConsumeError::Limited {
            message,
            retry_after,
        }) => Err(Failure {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: 8,
            message,
            reason: "rate_limited",
            retry_after: Some(retry_after),
        }),
    }
}
