//! The query API (`api` extension): traces, one trace, analytics summaries, health, and the
//! collector's own counters, as JSON over HTTP. Times are RFC 3339 in and out.

mod alerts;
mod cache;
mod config;
mod keys;
pub(crate) mod params;
mod stream;
pub(crate) mod views;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use llmscope_core::DEFAULT_PROJECT;
use llmscope_exporters::query::{EventQuery, QueryStore, TraceQuery, score_summary};
use serde_json::json;
use tokio::net::TcpListener;

pub use cache::{CacheConfig, QueryCache};
pub use config::ApiConfig;
pub use params::rfc3339;

use crate::auth::{AuthError, Authenticator, Principal};
use crate::telemetry::Telemetry;

/// Everything a handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn QueryStore>,
    pub config: ApiConfig,
    pub telemetry: Telemetry,
    /// API keys, when required: every read is scoped to the key's project.
    pub auth: Option<Arc<Authenticator>>,
    /// Analytics responses, cached.
    pub cache: Arc<QueryCache>,
    /// Alert rules and history, when the `alerts` extension runs.
    pub alerts: Option<Arc<crate::alerts::Alerts>>,
    /// The live stream, when served.
    pub stream: Option<Arc<crate::stream::Stream>>,
}

/// The API's one error type: clear messages for the client's mistakes, a generic body for ours.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    /// A bad field of a request body: named apart, so clients can point at it.
    Invalid {
        field: String,
        message: String,
    },
    Conflict(String),
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Unavailable(String),
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Invalid { field, message } => {
                let body = json!({ "error": format!("{field}: {message}"), "field": field });
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
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

/// The most custom events and scores a trace detail lists.
const TRACE_EVENTS_LIMIT: usize = 1000;

pub fn router(state: ApiState) -> Router {
    let pages = if state.config.ui {
        crate::ui::router()
    } else {
        Router::new()
    };
    pages
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/traces", get(traces))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .route("/api/v1/analytics/summary", get(summary))
        .route("/api/v1/anomalies", get(anomalies))
        .route("/api/v1/events", get(events))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route(
            "/api/v1/alert-rules",
            get(alerts::list).post(alerts::create),
        )
        .route(
            "/api/v1/alert-rules/{id}",
            get(alerts::get_one)
                .put(alerts::replace)
                .delete(alerts::delete),
        )
        .route(
            "/api/v1/alert-rules/{id}/test",
            axum::routing::post(alerts::test),
        )
        .route("/api/v1/alerts", get(alerts::history))
        .route("/api/v1/stream", get(stream::subscribe))
        .route("/api/v1/stream/token", axum::routing::post(stream::token))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            slow_refusals,
        ))
        .with_state(state)
}

/// A client whose requests keep being refused for their key (401) is answered ever more slowly,
/// by its address, as the receivers do.
async fn slow_refusals(
    State(s): State<ApiState>,
    client: Option<axum::Extension<crate::serve::ClientAddr>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED
        && let (Some(auth), Some(client)) = (&s.auth, client)
    {
        auth.hold_failure(client.0.0.ip()).await;
    }
    response
}

pub async fn serve(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = match state
        .config
        .tls
        .as_ref()
        .map(crate::tls::TlsFiles::server_config)
    {
        Some(Ok(config)) => Some(config),
        Some(Err(e)) => return Err(std::io::Error::other(e)),
        None => None,
    };
    let bounds = crate::serve::Bounds::new("api", state.config.max_connections, &state.telemetry);
    let header_read_timeout = state.config.header_read_timeout;
    crate::serve::http(
        listener,
        router(state),
        tls,
        bounds,
        header_read_timeout,
        shutdown,
    )
    .await
}

/// With `private_status`, `/readyz` and `/metrics` answer only a key or the admin token (when
/// keys are required at all); `/healthz` stays open for liveness probes.
async fn status_allowed(s: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if s.config.private_status {
        principal(s, headers).await?;
    }
    Ok(())
}

async fn readyz(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(e) = status_allowed(&s, &headers).await {
        return e.into_response();
    }
    let queues = queue_detail(&s.telemetry);
    match s.store.ready().await {
        Ok(()) => Json(json!({"status": "ready", "queues": queues})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "store not ready");
            let body = json!({"status": "not ready", "store": "unavailable", "queues": queues});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// The disk queues' gauges by pipeline, and by exporter within it, with the counts of what went
/// wrong so far: `{"traces": {"bytes": 1024, "dropped_records": 0, "exporters": {"sqlite":
/// {"pending_bytes": 0, "oldest_unexported_age_seconds": 0, "retries": 0,
/// "dead_letter_items": 0, "dropped_items": 0}}}}`.
fn queue_detail(telemetry: &crate::telemetry::Telemetry) -> serde_json::Value {
    use crate::telemetry::metrics;
    let mut queues = serde_json::Map::new();
    let gauges = [
        (&metrics::QUEUE_BYTES, "bytes"),
        (&metrics::QUEUE_PENDING_BYTES, "pending_bytes"),
        (
            &metrics::QUEUE_OLDEST_UNEXPORTED_AGE,
            "oldest_unexported_age_seconds",
        ),
    ];
    for (metric, field) in gauges {
        for gauge in telemetry.gauges(metric) {
            let Some(pipeline) = gauge.label("pipeline") else {
                continue;
            };
            let entry = queues
                .entry(pipeline)
                .or_insert_with(|| json!({"exporters": {}}));
            match gauge.label("exporter") {
                Some(exporter) => {
                    let exporters = &mut entry["exporters"];
                    if exporters.get(exporter).is_none() {
                        exporters[exporter] = json!({});
                    }
                    exporters[exporter][field] = json!(gauge.value);
                }
                None => entry[field] = json!(gauge.value),
            }
        }
    }
    for (pipeline, entry) in &mut queues {
        entry["dropped_records"] =
            json!(telemetry.get(&metrics::QUEUE_DROPPED_RECORDS, &[("pipeline", pipeline)]));
        let Some(exporters) = entry["exporters"].as_object_mut() else {
            continue;
        };
        for (exporter, detail) in exporters {
            let count = |metric| telemetry.get(metric, &[("exporter", exporter)]);
            let dropped = |reason| {
                telemetry.get(
                    &metrics::EXPORTER_DROPPED_ITEMS,
                    &[("exporter", exporter), ("reason", reason)],
                )
            };
            detail["retries"] = json!(count(&metrics::EXPORTER_RETRIES));
            detail["dead_letter_items"] = json!(count(&metrics::EXPORTER_DEAD_LETTER_ITEMS));
            detail["dropped_items"] = json!(
                ["permanent_error", "retries_exhausted", "dead_letter_full"]
                    .into_iter()
                    .map(dropped)
                    .sum::<u64>()
            );
        }
    }
    serde_json::Value::Object(queues)
}

async fn metrics(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    if let Err(e) = status_allowed(&s, &headers).await {
        return e.into_response();
    }
    let content_type = [(header::CONTENT_TYPE, "text/plain; version=0.0.4")];
    (content_type, s.telemetry.render()).into_response()
}

/// Who is asking, from the `Authorization: Bearer` or `x-api-key` header.
pub(crate) async fn principal(
    s: &ApiState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(auth) = &s.auth else {
        return Ok(None);
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let presented = crate::auth::presented(header("authorization"), header("x-api-key"), false);
    match auth.authenticate(presented.as_deref()).await {
        Ok(p) => Ok(Some(p)),
        Err(AuthError::Unavailable) => {
            Err(ApiError::Unavailable(AuthError::Unavailable.to_string()))
        }
        Err(e) => Err(ApiError::Unauthorized(e.to_string())),
    }
}

/// The project a read is about: a key's own; the admin's (or, without auth, anyone's) choice of
/// `?project=`, `default` if none. The parameter is taken out of `q`.
pub(crate) async fn project(
    s: &ApiState,
    headers: &HeaderMap,
    q: &mut HashMap<String, String>,
) -> Result<String, ApiError> {
    let asked = q.remove("project").filter(|p| !p.is_empty());
    match principal(s, headers).await? {
        Some(Principal::Key { project, .. }) => match asked {
            Some(other) if other != project => Err(ApiError::Forbidden(format!(
                "this key reads project {project:?} only, not {other:?}"
            ))),
            _ => Ok(project),
        },
        Some(Principal::Admin) | None => Ok(asked.unwrap_or_else(|| DEFAULT_PROJECT.to_owned())),
    }
}

async fn traces(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    let query: TraceQuery = params::trace_query(&q, &project, &s.config)?;
    let page = s.store.traces(&query).await?;
    Ok(Json(views::trace_page(&page)))
}

async fn trace(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    Query(mut q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    params::reject_unknown(&q, &[])?;
    let id = params::trace_id(&trace_id)?;
    let events = EventQuery::of_trace(&project, &id, TRACE_EVENTS_LIMIT);
    let (spans, events) = tokio::try_join!(s.store.trace(&project, &id), s.store.events(&events))?;
    match spans {
        Some(spans) => Ok(Json(views::trace_detail(&id, &spans, &events))),
        None => Err(ApiError::NotFound(format!("trace {id} not found"))),
    }
}

async fn summary(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    let (query, score) = params::summary_query(&q, &project)?;
    // The parsed query is the normalized form of the request: same meaning, same key.
    let key = format!("summary|{query:?}|{score:?}");
    if let Some(body) = s.cache.get(&key).await
        && let Ok(value) = serde_json::from_str(&body)
    {
        return Ok(Json(value));
    }
    let groups = s.store.summary(&query).await?;
    let body = match &score {
        Some(name) => {
            let scores = score_summary(s.store.as_ref(), &query, name).await?;
            views::summary(&query, &groups, Some((name, &scores)))
        }
        None => views::summary(&query, &groups, None),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    s.cache
        .put(
            &key,
            &body.to_string(),
            s.cache.ttl(query.filter.to_ns, now),
        )
        .await;
    Ok(Json(body))
}

async fn events(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    let query = params::event_query(&q, &project, &s.config)?;
    let rows = s.store.events(&query).await?;
    Ok(Json(views::events(&rows)))
}

async fn anomalies(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Params,
) -> Result<Json<serde_json::Value>, ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    let query = params::anomaly_query(&q, &project, &s.config)?;
    let rows = s.store.anomalies(&query).await?;
    Ok(Json(views::anomalies(&rows)))
}
