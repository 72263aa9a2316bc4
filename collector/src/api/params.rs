//! Query parameters, parsed strictly: unknown names and bad values are 400s that say what is
//! wrong.

use std::collections::HashMap;

use llmscope_exporters::query::{
    AnomalyQuery, Cursor, EventQuery, Filter, GroupBy, SummaryQuery, TraceQuery, trace_list,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ApiConfig, ApiError};

const FILTER_PARAMS: [&str; 5] = ["service", "model", "provider", "from", "to"];

pub fn reject_unknown(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    let mut unknown: Vec<&str> = q
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    unknown.sort_unstable();
    let allowed = if allowed.is_empty() {
        "none".to_owned()
    } else {
        allowed.join(", ")
    };
    Err(ApiError::BadRequest(format!(
        "unknown parameter {}; allowed: {allowed}",
        unknown.join(", ")
    )))
}

/// RFC 3339 to Unix nanoseconds.
pub fn time_ns(name: &str, value: &str) -> Result<i64, ApiError> {
    let t = OffsetDateTime::parse(value, &Rfc3339).map_err(|e| {
        ApiError::BadRequest(format!(
            "{name}: {value:?} is not an RFC 3339 time such as 2026-01-31T12:00:00Z ({e})"
        ))
    })?;
    i64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| ApiError::BadRequest(format!("{name}: {value:?} is out of range")))
}

/// Unix nanoseconds to RFC 3339 (UTC).
pub fn rfc3339(ns: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn non_empty(q: &HashMap<String, String>, name: &str) -> Option<String> {
    q.get(name)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn filter(q: &HashMap<String, String>, project: &str) -> Result<Filter, ApiError> {
    let from_ns = non_empty(q, "from")
        .map(|v| time_ns("from", &v))
        .transpose()?;
    let to_ns = non_empty(q, "to").map(|v| time_ns("to", &v)).transpose()?;
    if let (Some(f), Some(t)) = (from_ns, to_ns)
        && f >= t
    {
        return Err(ApiError::BadRequest("from must be earlier than to".into()));
    }
    Ok(Filter {
        project: project.to_owned(),
        service: non_empty(q, "service"),
        model: non_empty(q, "model"),
        provider: non_empty(q, "provider"),
        from_ns,
        to_ns,
    })
}

pub(crate) fn limit(q: &HashMap<String, String>, config: &ApiConfig) -> Result<usize, ApiError> {
    match non_empty(q, "limit") {
        None => Ok(config.default_limit),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=config.max_limit).contains(&n) => Ok(n),
            _ => Err(ApiError::BadRequest(format!(
                "limit: {v:?} is not a number between 1 and {}",
                config.max_limit
            ))),
        },
    }
}

pub fn anomaly_query(
    q: &HashMap<String, String>,
    project: &str,
    config: &ApiConfig,
) -> Result<AnomalyQuery, ApiError> {
    let mut allowed = FILTER_PARAMS.to_vec();
    allowed.extend(["kind", "limit"]);
    reject_unknown(q, &allowed)?;
    Ok(AnomalyQuery {
        filter: filter(q, project)?,
        kind: non_empty(q, "kind"),
        limit: limit(q, config)?,
    })
}

/// A boolean parameter: `true`/`1`, or `false`/`0`/empty/absent.
pub fn flag(q: &HashMap<String, String>, name: &str) -> Result<bool, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "{name}: {other:?} is not true or false"
        ))),
    }
}

pub fn trace_query(
    q: &HashMap<String, String>,
    project: &str,
    config: &ApiConfig,
) -> Result<TraceQuery, ApiError> {
    let mut allowed = FILTER_PARAMS.to_vec();
    allowed.extend(["user", "session", "errors_only", "q", "limit", "cursor"]);
    reject_unknown(q, &allowed)?;
    let limit = limit(q, config)?;
    let errors_only = flag(q, "errors_only")?;
    let text = non_empty(q, "q");
    let words: Vec<String> = text
        .as_deref()
        .map_or_else(Vec::new, |t| trace_list::words(t).collect());
    if text.is_some() && words.is_empty() {
        return Err(ApiError::BadRequest(
            "q: no words to search for (letters and digits)".into(),
        ));
    }
    if words.len() > trace_list::WORDS_PER_NAME {
        return Err(ApiError::BadRequest(format!(
            "q: at most {} words",
            trace_list::WORDS_PER_NAME
        )));
    }
    let cursor = non_empty(q, "cursor")
        .map(|c| {
            Cursor::decode(&c).ok_or_else(|| {
                ApiError::BadRequest("cursor: not a cursor returned by this API".into())
            })
        })
        .transpose()?;
    Ok(TraceQuery {
        filter: filter(q, project)?,
        user: non_empty(q, "user"),
        session: non_empty(q, "session"),
        errors_only,
        words,
        limit,
        cursor,
    })
}

/// A summary, and the name of the score whose count and mean each group reports (`score=`).
pub fn summary_query(
    q: &HashMap<String, String>,
    project: &str,
) -> Result<(SummaryQuery, Option<String>), ApiError> {
    let mut allowed = FILTER_PARAMS.to_vec();
    allowed.extend(["group_by", "bucket", "score"]);
    reject_unknown(q, &allowed)?;
    let names: Vec<&str> = GroupBy::ALL.iter().map(|g| g.name()).collect();
    let group_by = match non_empty(q, "group_by") {
        None => GroupBy::Model,
        Some(v) => GroupBy::parse(&v).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "group_by: {v:?} is not one of {}",
                names.join(", ")
            ))
        })?,
    };
    let bucket_ns = non_empty(q, "bucket")
        .map(|v| {
            let d = humantime::parse_duration(&v).map_err(|_| {
                ApiError::BadRequest(format!(
                    "bucket: {v:?} is not a duration such as 5m, 1h, 1d"
                ))
            })?;
            if d.as_secs() < 1 {
                return Err(ApiError::BadRequest("bucket: must be at least 1s".into()));
            }
            i64::try_from(d.as_nanos())
                .map_err(|_| ApiError::BadRequest("bucket: too large".into()))
        })
        .transpose()?;
    let score = non_empty(q, "score")
        .map(|v| name_param("score", v))
        .transpose()?;
    let query = SummaryQuery {
        filter: filter(q, project)?,
        group_by,
        bucket_ns,
    };
    Ok((query, score))
}

/// An event or score name: at most as long as a score name may be.
fn name_param(param: &str, value: String) -> Result<String, ApiError> {
    if value.len() > llmscope_core::score::MAX_NAME_BYTES {
        return Err(ApiError::BadRequest(format!(
            "{param}: longer than {} bytes",
            llmscope_core::score::MAX_NAME_BYTES
        )));
    }
    Ok(value)
}

/// `GET /api/v1/events`: `name`, `trace_id`, `service`, `from`, `to`, `limit`.
pub fn event_query(
    q: &HashMap<String, String>,
    project: &str,
    config: &ApiConfig,
) -> Result<EventQuery, ApiError> {
    reject_unknown(q, &["name", "trace_id", "service", "from", "to", "limit"])?;
    let f = filter(q, project)?;
    Ok(EventQuery {
        project: f.project,
        name: non_empty(q, "name")
            .map(|v| name_param("name", v))
            .transpose()?,
        score_name: None,
        trace_id: non_empty(q, "trace_id").map(|v| trace_id(&v)).transpose()?,
        service: f.service,
        from_ns: f.from_ns,
        to_ns: f.to_ns,
        limit: limit(q, config)?,
    })
}

/// A trace id: 32 hex digits, returned lowercase.
pub fn trace_id(raw: &str) -> Result<String, ApiError> {
    if raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(ApiError::BadRequest(format!(
            "{raw:?} is not a trace id (32 hex digits)"
        )))
    }
}
