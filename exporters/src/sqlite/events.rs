//! Custom events and scores over the SQLite `logs` table (`query::events`).

use llmscope_core::score::{SCORE_EVENT, SCORE_NAME};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, params_from_iter};

use super::read::{FILTER_SQL, filter_params, group_key_sql, named};
use crate::query::{EventQuery, EventRow, ScoredCall, SummaryQuery, scores_query};

/// The JSON path of the score name in `attributes`.
fn score_name_path() -> String {
    format!("$.\"{SCORE_NAME}\"")
}

/// Events newest first; conditions only for what is asked, so SQLite can use `logs_by_event`
/// or `logs_by_span`.
pub fn events(conn: &Connection, q: &EventQuery) -> rusqlite::Result<Vec<EventRow>> {
    let mut args: Vec<Sql> = vec![Sql::Text(q.project.clone())];
    let mut sql = String::from(
        "SELECT time_ns, event_name, trace_id, span_id, service, severity_text, body, attributes
         FROM logs WHERE project = ?1 AND event_name IS NOT NULL
           AND substr(event_name, 1, 7) <> 'gen_ai.'",
    );
    let mut and = |condition: &str, value: Sql| {
        args.push(value);
        sql.push_str(&format!(" AND {condition} ?{}", args.len()));
    };
    let text = |v: &String| Sql::Text(v.clone());
    if let Some(name) = &q.name {
        and("event_name =", text(name));
    }
    if let Some(score) = &q.score_name {
        and(
            &format!("json_extract(attributes, '{}') =", score_name_path()),
            text(score),
        );
    }
    if let Some(trace_id) = &q.trace_id {
        and("trace_id =", text(trace_id));
    }
    if let Some(service) = &q.service {
        and("service =", text(service));
    }
    if let Some(from) = q.from_ns {
        and("time_ns >=", Sql::Integer(from));
    }
    if let Some(to) = q.to_ns {
        and("time_ns <", Sql::Integer(to));
    }
    args.push(Sql::Integer(i64::try_from(q.limit).unwrap_or(i64::MAX)));
    sql.push_str(&format!(
        " ORDER BY time_ns DESC, event_name, span_id LIMIT ?{}",
        args.len()
    ));
    conn.prepare_cached(&sql)?
        .query_map(params_from_iter(args.iter()), |r| {
            let body: Option<String> = r.get(6)?;
            let attributes: String = r.get(7)?;
            Ok(EventRow {
                time_ns: r.get(0)?,
                name: r.get(1)?,
                trace_id: r.get(2)?,
                span_id: r.get(3)?,
                service: r.get(4)?,
                severity_text: r.get(5)?,
                body: body.and_then(|b| serde_json::from_str(&b).ok()),
                attributes: serde_json::from_str(&attributes).unwrap_or_default(),
            })
        })?
        .collect()
}

/// The model calls in the summary's filter of the traces scored `score`.
pub fn scored_calls(
    conn: &Connection,
    q: &SummaryQuery,
    score: &str,
) -> rusqlite::Result<Vec<ScoredCall>> {
    let scores = scores_query(&q.filter, score);
    let sql = format!(
        "SELECT s.trace_id, s.span_id, {key}, s.start_time_ns FROM spans s
         WHERE s.is_model_call = 1 AND {FILTER_SQL}
           AND s.trace_id IN (
               SELECT l.trace_id FROM logs l INDEXED BY logs_by_event
               WHERE l.project = :project AND l.event_name = :score_event
                 AND l.event_name IS NOT NULL AND l.time_ns >= :score_from
                 AND json_extract(l.attributes, '{path}') = :score)",
        key = group_key_sql(q.group_by),
        path = score_name_path(),
    );
    let mut params = filter_params(&q.filter);
    params.extend([
        (":score_event", Sql::Text(SCORE_EVENT.to_owned())),
        (
            ":score_from",
            Sql::Integer(scores.from_ns.unwrap_or(i64::MIN)),
        ),
        (":score", Sql::Text(score.to_owned())),
    ]);
    conn.prepare_cached(&sql)?
        .query_map(named(&params).as_slice(), |r| {
            Ok(ScoredCall {
                trace_id: r.get(0)?,
                span_id: r.get(1)?,
                key: r.get(2)?,
                start_ns: r.get(3)?,
            })
        })?
        .collect()
}
