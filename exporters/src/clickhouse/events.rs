//! Custom events and scores over the ClickHouse `logs` table (`query::events`). Attribute values
//! are stored as JSON text, so a score name is compared in its JSON form.

use clickhouse::Row;
use llmscope_core::score::SCORE_NAME;
use serde::Deserialize;

use super::read::{Calls, Sql, calls_from, group_key, json_map, none_if_empty};
use super::{ClickHouseError, ClickHouseStore, classify};
use crate::query::{EventQuery, EventRow, ScoredCall, SummaryQuery, scores_query};

type Result<T> = std::result::Result<T, ClickHouseError>;

#[derive(Row, Deserialize)]
struct EventSelect {
    time_ns: i64,
    name: String,
    trace_id: String,
    span_id: String,
    service: String,
    severity_text: String,
    body: String,
    attribute_keys: Vec<String>,
    attribute_values: Vec<String>,
}

/// The conditions on `logs` of the events `q` asks for (not its limit).
pub(super) fn events_where(sql: &mut Sql, q: &EventQuery) {
    sql.str(" project = ?", &q.project)
        .push(" AND event_name != '' AND NOT startsWith(event_name, 'gen_ai.')");
    if let Some(name) = &q.name {
        sql.str(" AND event_name = ?", name);
    }
    if let Some(score) = &q.score_name {
        let json = serde_json::Value::String(score.clone()).to_string();
        sql.str(&format!(" AND attributes['{SCORE_NAME}'] = ?"), &json);
    }
    if let Some(trace_id) = &q.trace_id {
        sql.str(" AND trace_id = ?", trace_id);
    }
    if let Some(service) = &q.service {
        sql.str(" AND service = ?", service);
    }
    if let Some(from) = q.from_ns {
        sql.int(" AND time >= fromUnixTimestamp64Nano(?, 'UTC')", from);
    }
    if let Some(to) = q.to_ns {
        sql.int(" AND time < fromUnixTimestamp64Nano(?, 'UTC')", to);
    }
}

/// Events newest first.
pub async fn events(store: &ClickHouseStore, q: &EventQuery) -> Result<Vec<EventRow>> {
    let db = store.database();
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT toUnixTimestamp64Nano(time) AS time_ns, event_name AS name, trace_id, span_id,
                service, severity_text, body, mapKeys(attributes) AS attribute_keys,
                mapValues(attributes) AS attribute_values
         FROM {db}.logs WHERE"
    ));
    events_where(&mut sql, q);
    sql.int(
        " ORDER BY time DESC, event_name, span_id LIMIT ?",
        i64::try_from(q.limit).unwrap_or(i64::MAX),
    );
    let rows: Vec<EventSelect> = sql.query(store).fetch_all().await.map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|r| EventRow {
            time_ns: r.time_ns,
            name: r.name,
            trace_id: none_if_empty(r.trace_id),
            span_id: none_if_empty(r.span_id),
            service: none_if_empty(r.service),
            severity_text: none_if_empty(r.severity_text),
            body: none_if_empty(r.body).and_then(|b| serde_json::from_str(&b).ok()),
            attributes: json_map(r.attribute_keys, r.attribute_values),
        })
        .collect())
}

#[derive(Row, Deserialize)]
struct ScoredSelect {
    trace_id: String,
    span_id: String,
    key: String,
    start_ns: i64,
}

/// The model calls in the summary's filter of the traces scored `score`.
pub async fn scored_calls(
    store: &ClickHouseStore,
    q: &SummaryQuery,
    score: &str,
) -> Result<Vec<ScoredCall>> {
    let scores = scores_query(&q.filter, score);
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT s.trace_id AS trace_id, s.span_id AS span_id, {key} AS key,
                toUnixTimestamp64Nano(s.start_time) AS start_ns",
        key = group_key(q.group_by)
    ));
    let calls = Calls {
        f: &q.filter,
        ranges: &[],
        scored: Some(&scores),
    };
    calls_from(&mut sql, store.database(), q.group_by, &calls);
    // A span may be stored twice until its parts merge.
    sql.push(" LIMIT 1 BY s.trace_id, s.span_id");
    let rows: Vec<ScoredSelect> = sql.query(store).fetch_all().await.map_err(classify)?;
    Ok(rows
        .into_iter()
        .map(|r| ScoredCall {
            trace_id: r.trace_id,
            span_id: r.span_id,
            key: none_if_empty(r.key),
            start_ns: r.start_ns,
        })
        .collect())
}
