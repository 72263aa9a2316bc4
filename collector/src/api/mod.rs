//! The query API (`api` extension): traces, one trace, analytics summaries, health, and the
//! collector's own counters, as JSON over HTTP. Times are RFC 3339 in and out.

mod config;
mod params;
mod views;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use llmscope_core::DEFAULT_PROJECT;
use llmscope_exporters::query::{QueryStore, TraceQuery};
use serde_json::json;
use tokio::net::TcpListener;

pub use config::ApiConfig;

use crate::telemetry::Telemetry;

/// Everything a handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn QueryStore>,
    pub config: ApiConfig,
    pub telemetry: Telemetry,
}

/// The API's one error type: clear messages for the client's mistakes, a generic body for ours.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "query failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error".to_owned(),
                )
            }
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<llmscope_exporters::query::QueryError> for ApiError {
    fn from(e: llmscope_exporters::query::QueryError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

type Params = Query<HashMap<String, String>>;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/traces", get(traces))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .route("/api/v1/analytics/summary", get(summary))
        .route("/api/v1/anomalies", get(anomalies))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .with_state(state)
}

pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(s): State<ApiState>) -> Response {
    match s.store.ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            let body = json!({"status": "not ready", "store": "unavailable"});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    (content_type, s.telemetry.render()).into_response()
}

async fn traces(
    State(s): State<ApiState>,
    Query(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query: TraceQuery = params::trace_query(&q, DEFAULT_PROJECT, &s.config)?;
    let page = s.store.traces(&query).await?;
    Ok(Json(views::trace_page(&page)))
}

async fn trace(
    State(s): State<ApiState>,
    Path(trace_id): Path<String>,
    Query(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    params::reject_unknown(&q, &[])?;
    let id = params::trace_id(&trace_id)?;
    match s.store.trace(DEFAULT_PROJECT, &id).await? {
        Some(spans) => Ok(Json(views::trace_detail(&id, &spans))),
        None => Err(ApiError::NotFound(format!("trace {id} not found"))),
    }
}

async fn summary(
    State(s): State<ApiState>,
    Query(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = params::summary_query(&q, DEFAULT_PROJECT)?;
    let groups = s.store.summary(&query).await?;
    Ok(Json(views::summary(&query, &groups)))
}

async fn anomalies(
    State(s): State<ApiState>,
    Query(q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let query = params::anomaly_query(&q, DEFAULT_PROJECT, &s.config)?;
    let rows = s.store.anomalies(&query).await?;
    Ok(Json(views::anomalies(&rows)))
}
