//! OTLP/gRPC: TraceService, LogsService and MetricsService on one listener.

use std::future::Future;

use llmscope_core::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use llmscope_core::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use llmscope_core::otlp::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use llmscope_core::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use llmscope_core::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use llmscope_core::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};
use tower::util::MapResponseLayer;

use super::{Ingest, OtlpRequest};
use crate::pipeline::ConsumeError;

#[derive(Clone)]
struct Handler(Ingest);

impl Handler {
    async fn handle<R: OtlpRequest>(
        &self,
        request: Request<R>,
    ) -> Result<Response<R::Response>, Status> {
        // Authenticated before the body was read (`grpc_auth`); a request that reached here
        // without a caller did not pass through that layer, which is a bug, not the client's.
        let Some(caller) = request.extensions().get::<super::Caller>().cloned() else {
            return Err(Status::unauthenticated("no credentials checked"));
        };
        match self.0.ingest(request.into_inner().payload(), caller).await {
            Ok(accepted) => Ok(Response::new(R::response(accepted))),
            Err(ConsumeError::Refused(m)) => Err(Status::invalid_argument(m)),
            // UNAVAILABLE is retryable under OTLP: the client backs off and sends again.
            Err(ConsumeError::Unavailable(m)) => Err(Status::unavailable(m)),
            // RESOURCE_EXHAUSTED with RetryInfo: retryable, after the delay given.
            Err(ConsumeError::Limited {
                message,
                retry_after,
            }) => {
                use tonic_types::{ErrorDetails, StatusExt};
                let details = ErrorDetails::with_retry_info(Some(retry_after));
                Err(Status::with_error_details(
                    tonic::Code::ResourceExhausted,
                    message,
                    details,
                ))
            }
        }
    }
}

#[tonic::async_trait]
impl TraceService for Handler {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.handle(request).await
    }
}

#[tonic::async_trait]
impl LogsService for Handler {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        self.handle(request).await
    }
}

#[tonic::async_trait]
impl MetricsService for Handler {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.handle(request).await
    }
}

/// tonic answers a request it cannot decode (malformed protobuf) with `INTERNAL`; for OTLP that
/// is the client's mistake, `INVALID_ARGUMENT`, which clients must not retry. Our handlers never
/// return `INTERNAL` themselves, so every `INTERNAL` here comes from decoding.
fn decode_errors_are_invalid_argument(
    mut response: axum::http::Response<tonic::body::Body>,
) -> axum::http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    if headers.get("grpc-status").is_some_and(|v| v == "13") {
        headers.insert("grpc-status", axum::http::HeaderValue::from_static("3"));
    }
    response
}

/// Serves the services of the signals `ingest` has consumers for, until `shutdown` resolves;
/// in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    max_message_bytes: usize,
    max_streams: u32,
    bounds: crate::serve::Bounds,
    tls: Option<&crate::tls::TlsFiles>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    let handler = Handler(ingest.clone());
    let gzip = CompressionEncoding::Gzip;
    let traces = ingest.consumers.traces.is_some().then(|| {
        TraceServiceServer::new(handler.clone())
            .max_decoding_message_size(max_message_bytes)
            .accept_compressed(gzip)
            .send_compressed(gzip)
    });
    let logs = ingest.consumers.logs.is_some().then(|| {
        LogsServiceServer::new(handler.clone())
            .max_decoding_message_size(max_message_bytes)
            .accept_compressed(gzip)
            .send_compressed(gzip)
    });
    let metrics = ingest.consumers.metrics.is_some().then(|| {
        MetricsServiceServer::new(handler.clone())
            .max_decoding_message_size(max_message_bytes)
            .accept_compressed(gzip)
            .send_compressed(gzip)
    });
    // Idle connections are probed and dropped when they stop answering.
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)));
    if let Some(files) = tls {
        let (cert, key) = files.read()?;
        let identity = tonic::transport::Identity::from_pem(cert, key);
        builder = builder
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .map_err(|e| e.to_string())?;
    }
    builder
        .max_concurrent_streams(Some(max_streams))
        .layer(MapResponseLayer::new(decode_errors_are_invalid_argument))
        .layer(super::grpc_auth::AuthenticateLayer(ingest.clone()))
        .add_optional_service(traces)
        .add_optional_service(logs)
        .add_optional_service(metrics)
        .serve_with_incoming_shutdown(crate::serve::incoming(listener, bounds), shutdown)
        .await
        .map_err(|e| e.to_string())
}
