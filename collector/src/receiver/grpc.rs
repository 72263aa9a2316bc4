//! OTLP/gRPC: TraceService, LogsService and MetricsService on one listener.

use std::future::Future;

use llmscope_core::Payload;
use llmscope_core::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use llmscope_core::otlp::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use llmscope_core::otlp::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use llmscope_core::otlp::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use llmscope_core::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use llmscope_core::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::{Accepted, Ingest};
use crate::pipeline::ConsumeError;

#[derive(Clone)]
struct Handler(Ingest);

impl Handler {
    async fn handle(&self, payload: Payload) -> Result<Accepted, Status> {
        self.0.ingest(payload).await.map_err(|e| match e {
            ConsumeError::Refused(m) => Status::invalid_argument(m),
            // UNAVAILABLE is retryable under OTLP: the client backs off and sends again.
            ConsumeError::Unavailable(m) => Status::unavailable(m),
        })
    }
}

#[tonic::async_trait]
impl TraceService for Handler {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let a = self
            .handle(Payload::Traces(request.into_inner().resource_spans))
            .await?;
        let partial_success = (a.rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: a.rejected,
            error_message: a.message,
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Handler {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let a = self
            .handle(Payload::Logs(request.into_inner().resource_logs))
            .await?;
        let partial_success = (a.rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: a.rejected,
            error_message: a.message,
        });
        Ok(Response::new(ExportLogsServiceResponse { partial_success }))
    }
}

#[tonic::async_trait]
impl MetricsService for Handler {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let a = self
            .handle(Payload::Metrics(request.into_inner().resource_metrics))
            .await?;
        let partial_success = (a.rejected > 0).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: a.rejected,
            error_message: a.message,
        });
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success,
        }))
    }
}

/// Serves the services of the signals `ingest` has consumers for, until `shutdown` resolves;
/// in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    ingest: Ingest,
    max_message_bytes: usize,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
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
    tonic::transport::Server::builder()
        .add_optional_service(traces)
        .add_optional_service(logs)
        .add_optional_service(metrics)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
