//! Alert rules and their history, scoped to the caller's project as every read is:
//! `POST/GET /api/v1/alert-rules`, `GET/PUT/DELETE /api/v1/alert-rules/{id}`,
//! `POST /api/v1/alert-rules/{id}/test` (a dry run) and `GET /api/v1/alerts`.
//! Another project's rule is a 404, as an unknown one is.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use llmscope_exporters::metadata::alerts::{EventQuery, StoredRule};
use serde_json::{Value as J, json};

use super::params::{limit, reject_unknown, rfc3339, time_ns};
use super::{ApiError, ApiState, project};
use crate::alerts::rule::{Rule, RuleError};
use crate::alerts::{Alerts, now_ns};

fn alerts(s: &ApiState) -> Result<&Arc<Alerts>, ApiError> {
    s.alerts.as_ref().ok_or_else(|| {
        ApiError::NotFound("alert rules need the `alerts` extension in service.extensions".into())
    })
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn invalid(e: RuleError) -> ApiError {
    ApiError::Invalid {
        field: e.field,
        message: e.message,
    }
}

fn view(stored: &StoredRule) -> J {
    let mut v = Rule::from_json(stored.definition.as_bytes())
        .map(|r| r.view())
        .unwrap_or_else(|e| json!({"error": format!("stored rule does not parse: {e}")}));
    v["id"] = J::String(stored.id.clone());
    v["project"] = J::String(stored.project.clone());
    v["source"] = J::String(stored.source.clone());
    v["created_at"] = J::String(rfc3339(stored.created_at_ns));
    v["updated_at"] = stored
        .updated_at_ns
        .map_or(J::Null, |t| J::String(rfc3339(t)));
    v
}

/// The body without what a `GET` adds (`id`, `project`, `source`, times, `secret_set`), so a
/// rule read, changed and sent back is accepted.
fn without_read_only(body: &[u8]) -> Vec<u8> {
    let Ok(J::Object(mut rule)) = serde_json::from_slice::<J>(body) else {
        return body.to_vec();
    };
    for key in ["id", "project", "source", "created_at", "updated_at"] {
        rule.remove(key);
    }
    if let Some(J::Array(channels)) = rule.get_mut("notify") {
        for c in channels.iter_mut().filter_map(J::as_object_mut) {
            c.remove("secret_set");
        }
    }
    J::Object(rule).to_string().into_bytes()
}

/// A rule from a request body, with its webhook targets checked.
fn parse(a: &Alerts, body: &[u8], old: Option<&StoredRule>) -> Result<Rule, ApiError> {
    let mut spec = Rule::parse(&without_read_only(body)).map_err(invalid)?;
    if let Some(old) = old.and_then(|o| Rule::parse(o.definition.as_bytes()).ok()) {
        spec.restore_from(&old);
    }
    let rule = Rule::check(spec).map_err(invalid)?;
    a.check_for_saving(&rule).map_err(invalid)?;
    Ok(rule)
}

/// The caller's rule `id` (404 for an unknown one or another project's), with the extension,
/// once the parameters are checked.
async fn callers_rule<'a>(
    s: &'a ApiState,
    headers: &HeaderMap,
    id: &str,
    q: &mut HashMap<String, String>,
) -> Result<(&'a Alerts, StoredRule), ApiError> {
    let project = project(s, headers, q).await?;
    reject_unknown(q, &[])?;
    let a = alerts(s)?;
    let stored = a
        .meta
        .rules(Some(&project))
        .await
        .map_err(internal)?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no alert rule {id}")))?;
    Ok((a, stored))
}

fn writable(stored: &StoredRule) -> Result<(), ApiError> {
    if stored.source == "config" {
        return Err(ApiError::Conflict(format!(
            "alert rule {} is declared in config (extensions.alerts.rules); change it there",
            stored.id
        )));
    }
    Ok(())
}

pub async fn create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<(StatusCode, Json<J>), ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    reject_unknown(&q, &[])?;
    let a = alerts(&s)?;
    let rule = parse(a, &body, None)?;
    let stored = a.create_rule(&project, &rule).await.map_err(internal)?;
    Ok((StatusCode::CREATED, Json(view(&stored))))
}

pub async fn list(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Json<J>, ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    reject_unknown(&q, &[])?;
    let rules = alerts(&s)?
        .meta
        .rules(Some(&project))
        .await
        .map_err(internal)?;
    Ok(Json(
        json!({"rules": rules.iter().map(view).collect::<Vec<_>>()}),
    ))
}

pub async fn get_one(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Json<J>, ApiError> {
    let (_, stored) = callers_rule(&s, &headers, &id, &mut q).await?;
    Ok(Json(view(&stored)))
}

pub async fn replace(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<J>, ApiError> {
    let (a, mut stored) = callers_rule(&s, &headers, &id, &mut q).await?;
    writable(&stored)?;
    let rule = parse(a, &body, Some(&stored))?;
    stored.name = rule.spec.name.clone();
    stored.definition = rule.to_stored();
    stored.enabled = rule.spec.enabled;
    stored.updated_at_ns = Some(now_ns());
    a.meta.save_rule(&stored).await.map_err(internal)?;
    Ok(Json(view(&stored)))
}

pub async fn delete(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Json<J>, ApiError> {
    let (a, stored) = callers_rule(&s, &headers, &id, &mut q).await?;
    writable(&stored)?;
    a.meta.delete_rule(&id, now_ns()).await.map_err(internal)?;
    Ok(Json(json!({"id": id, "deleted": true})))
}

pub async fn test(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Json<J>, ApiError> {
    let (a, stored) = callers_rule(&s, &headers, &id, &mut q).await?;
    crate::alerts::test_rule(a, &stored)
        .await
        .map(Json)
        .map_err(ApiError::Internal)
}

/// `GET /api/v1/alerts?rule=&state=&from=&to=&limit=`: transitions and delivery attempts,
/// newest first.
pub async fn history(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Query(mut q): Query<HashMap<String, String>>,
) -> Result<Json<J>, ApiError> {
    let project = project(&s, &headers, &mut q).await?;
    reject_unknown(&q, &["rule", "state", "from", "to", "limit"])?;
    let a = alerts(&s)?;
    let get = |name: &str| q.get(name).filter(|v| !v.is_empty()).cloned();
    let query = EventQuery {
        project,
        rule: get("rule"),
        state: get("state"),
        from_ns: get("from").map(|v| time_ns("from", &v)).transpose()?,
        to_ns: get("to").map(|v| time_ns("to", &v)).transpose()?,
        limit: limit(&q, &s.config)?,
    };
    let events = a.meta.events(&query).await.map_err(internal)?;
    let events: Vec<J> = events
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "rule": e.rule_id,
                "series": serde_json::from_str::<J>(&e.series).unwrap_or(J::Null),
                "state": e.state,
                "at": rfc3339(e.at_ns),
                "details": serde_json::from_str::<J>(&e.details).unwrap_or(J::Null),
                "token": e.token,
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}
