//! Custom events and scores over the PostgreSQL `logs` table (`query::events`).

use llmscope_core::score::{SCORE_EVENT, SCORE_NAME};
use serde_json::Value as J;

use super::read::{Sql, group_key, span_filter};
use super::{PostgresError, PostgresStore};
use crate::query::{EventQuery, EventRow, ScoredCall, SummaryQuery, scores_query};

type Result<T> = std::result::Result<T, PostgresError>;

/// Events newest first.
pub async fn events(store: &PostgresStore, q: &EventQuery) -> Result<Vec<EventRow>> {
    let mut sql = Sql::default();
    sql.push(
        "SELECT time_ns, event_name, trace_id, span_id, service, severity_text, body, attributes
         FROM logs WHERE event_name IS NOT NULL AND left(event_name, 7) <> 'gen_ai.'",
    )
    .bind(" AND project = ", q.project.clone());
    if let Some(name) = &q.name {
        sql.bind(" AND event_name = ", name.clone());
    }
    if let Some(score) = &q.score_name {
        sql.bind(
            &format!(" AND attributes ->> '{SCORE_NAME}' = "),
            score.clone(),
        );
    }
    if let Some(trace_id) = &q.trace_id {
        sql.bind(" AND trace_id = ", trace_id.clone());
    }
    if let Some(service) = &q.service {
        sql.bind(" AND service = ", service.clone());
    }
    if let Some(from) = q.from_ns {
        sql.bind(" AND time_ns >= ", from);
    }
    if let Some(to) = q.to_ns {
        sql.bind(" AND time_ns < ", to);
    }
    sql.bind(
        " ORDER BY time_ns DESC, event_name, span_id LIMIT ",
        i64::try_from(q.limit).unwrap_or(i64::MAX),
    );
    Ok(sql
        .query(store)
        .await?
        .iter()
        .map(|r| {
            let body: Option<String> = r.get(6);
            let attributes: J = r.get(7);
            EventRow {
                time_ns: r.get(0),
                name: r.get(1),
                trace_id: r.get(2),
                span_id: r.get(3),
                service: r.get(4),
                severity_text: r.get(5),
                body: body.and_then(|b| serde_json::from_str(&b).ok()),
                attributes: match attributes {
                    J::Object(map) => map,
                    _ => Default::default(),
                },
            }
        })
        .collect())
}

/// The model calls in the summary's filter of the traces scored `score`.
pub async fn scored_calls(
    store: &PostgresStore,
    q: &SummaryQuery,
    score: &str,
) -> Result<Vec<ScoredCall>> {
    let scores = scores_query(&q.filter, score);
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT s.trace_id, s.span_id, {key}, s.start_time_ns FROM spans s
         WHERE s.is_model_call AND",
        key = group_key(q.group_by)
    ));
    span_filter(&mut sql, &q.filter);
    sql.push(" AND s.trace_id IN (SELECT l.trace_id FROM logs l WHERE")
        .bind(" l.project = ", q.filter.project.clone())
        .bind(" AND l.event_name = ", SCORE_EVENT.to_owned())
        .bind(
            &format!(" AND l.attributes ->> '{SCORE_NAME}' = "),
            score.to_owned(),
        );
    if let Some(from) = scores.from_ns {
        sql.bind(" AND l.time_ns >= ", from);
    }
    sql.push(")");
    Ok(sql
        .query(store)
        .await?
        .iter()
        .map(|r| ScoredCall {
            trace_id: r.get(0),
            span_id: r.get(1),
            key: r.get(2),
            start_ns: r.get(3),
        })
        .collect())
}
