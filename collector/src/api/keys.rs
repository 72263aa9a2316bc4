//! The key API, for the admin token: create (the key is shown once), list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value as J, json};

use super::params::rfc3339;
use super::{ApiError, ApiState, principal};
use crate::auth::{Authenticator, Principal, create_key};
use llmscope_exporters::metadata::{ApiKey, MetadataStore};
use std::sync::Arc;

/// The authenticator and its key store, for the admin token.
async fn admin<'a>(
    s: &'a ApiState,
    headers: &HeaderMap,
) -> Result<(&'a Authenticator, &'a Arc<dyn MetadataStore>), ApiError> {
    let Some(auth) = s.auth.as_deref() else {
        return Err(ApiError::NotFound(
            "API keys need the auth extension".into(),
        ));
    };
    let Some(store) = auth.store() else {
        return Err(ApiError::NotFound(
            "this collector keeps no key store: its keys are listed in its config".into(),
        ));
    };
    match principal(s, headers).await? {
        Some(Principal::Admin) => Ok((auth, store)),
        _ => Err(ApiError::Forbidden(
            "managing keys needs the admin token".into(),
        )),
    }
}

pub fn view(k: &ApiKey) -> J {
    json!({
        "id": k.id,
        "project": k.project,
        "name": k.name,
        "display_prefix": k.display_prefix,
        "created_at": rfc3339(k.created_at_ns),
        "last_used_at": k.last_used_at_ns.map(rfc3339),
        "revoked_at": k.revoked_at_ns.map(rfc3339),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    project: String,
    name: String,
}

pub async fn create(
    State(s): State<ApiState>,
    headers: HeaderMap,
    body: Result<Json<NewKey>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<J>), ApiError> {
    let (_, store) = admin(&s, &headers).await?;
    let Json(new) =
        body.map_err(|e| ApiError::BadRequest(format!("expected {{\"project\", \"name\"}}: {e}")))?;
    let valid = |v: &str| !v.is_empty() && v.len() <= 128;
    if !valid(&new.project) || !valid(&new.name) {
        return Err(ApiError::BadRequest(
            "project and name must be 1 to 128 characters".into(),
        ));
    }
    let created = create_key(store.as_ref(), &new.project, &new.name)
        .await
        .map_err(ApiError::Internal)?;
    let mut body = view(&created.stored);
    body["key"] = J::String(created.key);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn list(
    State(s): State<ApiState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Json<J>, ApiError> {
    let (_, store) = admin(&s, &headers).await?;
    super::params::reject_unknown(&q, &["project"])?;
    let keys = store
        .keys(q.get("project").map(String::as_str))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(
        json!({ "keys": keys.iter().map(view).collect::<Vec<_>>() }),
    ))
}

pub async fn revoke(
    State(s): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<J>, ApiError> {
    let (auth, store) = admin(&s, &headers).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    match store.revoke_key(&id, now).await {
        Ok(true) => {
            auth.forget_key(&id);
            Ok(Json(json!({ "id": id, "revoked": true })))
        }
        Ok(false) => Err(ApiError::NotFound(format!("no key {id}"))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}
