//! The query API's reads over the SQLite tables.

use std::collections::HashSet;

use foldhash::fast::FixedState;

use llmscope_core::semconv::GenAiFields;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, Row, params, params_from_iter};

use crate::query::{
    AnomalyQuery, CallRow, Filter, GroupBy, SummaryGroup, SummaryQuery, TracePage, TraceQuery,
    TraceSummary, summarize,
};
use crate::query::{rollup, trace_list};
use crate::record::{AnomalyRow, SpanRecord};

/// Named parameters for the shared filter: `:project`, `:from`, `:to`, `:service`, `:model`,
/// `:provider`.
pub(super) const FILTER_SQL: &str = "s.project = :project
    AND s.start_time_ns >= :from AND s.start_time_ns < :to
    AND (:service IS NULL OR s.service = :service)
    AND (:model IS NULL OR s.request_model = :model OR s.response_model = :model)
    AND (:provider IS NULL OR s.provider = :provider)";

pub(super) fn filter_params(f: &Filter) -> Vec<(&'static str, Sql)> {
    let text = |v: &Option<String>| v.clone().map_or(Sql::Null, Sql::Text);
    vec![
        (":project", Sql::Text(f.project.clone())),
        (":from", Sql::Integer(f.from_ns.unwrap_or(i64::MIN))),
        (":to", Sql::Integer(f.to_ns.unwrap_or(i64::MAX))),
        (":service", text(&f.service)),
        (":model", text(&f.model)),
        (":provider", text(&f.provider)),
    ]
}

pub(super) fn named<'a>(
    params: &'a [(&'static str, Sql)],
) -> Vec<(&'static str, &'a dyn rusqlite::ToSql)> {
    params
        .iter()
        .map(|(k, v)| (*k, v as &dyn rusqlite::ToSql))
        .collect()
}

/// One page of the trace list, newest first: a keyset scan of `traces_by_start`, or with a
/// filter of `trace_keys` (any further key checked by primary key), then each row by id.
pub fn traces(conn: &Connection, q: &TraceQuery) -> rusqlite::Result<TracePage> {
    let f = &q.filter;
    let keys = trace_list::list_keys(q);
    let mut args: Vec<Sql> = vec![Sql::Text(f.project.clone())];
    let mut sql = match keys.split_first() {
        None => "SELECT trace_id, start_ns FROM traces k WHERE k.project = ?1".to_owned(),
        Some((first, rest)) => {
            args.push(Sql::Text(first.clone()));
            let mut sql =
                "SELECT trace_id, start_ns FROM trace_keys k WHERE k.project = ?1 AND k.key = ?2"
                    .to_owned();
            for key in rest {
                args.push(Sql::Text(key.clone()));
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM trace_keys x WHERE x.project = k.project
                        AND x.key = ?{} AND x.start_ns = k.start_ns AND x.trace_id = k.trace_id)",
                    args.len()
                ));
            }
            sql
        }
    };
    if let Some(from) = f.from_ns {
        args.push(Sql::Integer(from));
        sql.push_str(&format!(" AND k.start_ns >= ?{}", args.len()));
    }
    if let Some(to) = f.to_ns {
        args.push(Sql::Integer(to));
        sql.push_str(&format!(" AND k.start_ns < ?{}", args.len()));
    }
    if let Some(c) = &q.cursor {
        args.push(Sql::Integer(c.start_ns));
        args.push(Sql::Text(c.trace_id.clone()));
        sql.push_str(&format!(
            " AND (k.start_ns, k.trace_id) < (?{}, ?{})",
            args.len() - 1,
            args.len()
        ));
    }
    args.push(Sql::Integer(q.limit as i64 + 1));
    sql.push_str(&format!(
        " ORDER BY k.start_ns DESC, k.trace_id DESC LIMIT ?{}",
        args.len()
    ));
    let ids: Vec<String> = conn
        .prepare_cached(&sql)?
        .query_map(params_from_iter(args.iter()), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut row = conn.prepare_cached(
        "SELECT trace_id, service, root_name, start_ns, duration_ns, span_count, llm_calls,
                input_tokens, output_tokens, cost_usd, error
         FROM traces WHERE project = ?1 AND trace_id = ?2",
    )?;
    let traces = ids
        .iter()
        .map(|id| {
            row.query_row(params![f.project, id], |r| {
                Ok(TraceSummary {
                    trace_id: r.get(0)?,
                    service: r.get(1)?,
                    root_name: r.get(2)?,
                    start_ns: r.get(3)?,
                    duration_ns: r.get(4)?,
                    span_count: r.get(5)?,
                    llm_calls: r.get(6)?,
                    input_tokens: r.get(7)?,
                    output_tokens: r.get(8)?,
                    cost_usd: r.get(9)?,
                    error: r.get(10)?,
                })
            })
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(TracePage::paginate(traces, q.limit))
}

const SPAN_COLUMNS: &str = "project, trace_id, span_id, parent_span_id, name, kind, service,
    scope_name, start_time_ns, end_time_ns, status_code, status_message, operation, provider,
    request_model, response_model, response_id, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, cost_usd, session_id, user_id, conversation_id,
    is_model_call, input_messages, output_messages, system_instructions, attributes,
    CASE WHEN resource_attributes = '' THEN (SELECT r.attributes FROM resources r
        WHERE r.project = spans.project AND r.id = spans.resource_id)
    ELSE resource_attributes END, events, links";

fn span_from_row(r: &Row<'_>) -> rusqlite::Result<SpanRecord> {
    let mut span = SpanRecord {
        project: r.get(0)?,
        trace_id: r.get(1)?,
        span_id: r.get(2)?,
        parent_span_id: r.get(3)?,
        name: r.get(4)?,
        kind: r.get(5)?,
        service: r.get(6)?,
        scope_name: r.get(7)?,
        start_time_ns: r.get(8)?,
        end_time_ns: r.get(9)?,
        status_code: r.get(10)?,
        status_message: r.get(11)?,
        gen_ai: GenAiFields {
            operation: r.get(12)?,
            provider: r.get(13)?,
            request_model: r.get(14)?,
            response_model: r.get(15)?,
            response_id: r.get(16)?,
            input_tokens: r.get(17)?,
            output_tokens: r.get(18)?,
            cache_read_tokens: r.get(19)?,
            cache_write_tokens: r.get(20)?,
            reasoning_tokens: r.get(21)?,
            cost_usd: r.get(22)?,
            session_id: r.get(23)?,
            user_id: r.get(24)?,
            conversation_id: r.get(25)?,
            is_model_call: r.get::<_, i64>(26)? != 0,
            input_messages: r.get(27)?,
            output_messages: r.get(28)?,
            system_instructions: r.get(29)?,
        },
        attributes: json_map(&r.get::<_, String>(30)?),
        // Stored once in `resources`; rows written before keep their own.
        resource_attributes: std::sync::Arc::new(json_map(&r.get::<_, String>(31)?)),
        events: r.get(32)?,
        links: r.get(33)?,
    };
    crate::record::restore_typed(&mut span.attributes, &span.gen_ai);
    Ok(span)
}

fn json_map(text: &str) -> crate::record::JsonMap {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn trace(
    conn: &Connection,
    project: &str,
    trace_id: &str,
) -> rusqlite::Result<Option<Vec<SpanRecord>>> {
    // By primary key, sorted here: asked to order by start, SQLite would walk the project's
    // spans in time order instead.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SPAN_COLUMNS} FROM spans WHERE project = ?1 AND trace_id = ?2"
    ))?;
    let mut spans: Vec<SpanRecord> = stmt
        .query_map([project, trace_id], span_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    spans.sort_by(|a, b| (a.start_time_ns, &a.span_id).cmp(&(b.start_time_ns, &b.span_id)));
    if spans.is_empty() {
        return Ok(None);
    }
    join_event_content(conn, project, trace_id, &mut spans)?;
    Ok(Some(spans))
}

/// Content that arrived as GenAI log events fills the spans that have none of their own.
fn join_event_content(
    conn: &Connection,
    project: &str,
    trace_id: &str,
    spans: &mut [SpanRecord],
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT span_id, input_messages, output_messages, system_instructions
         FROM logs INDEXED BY logs_by_span
         WHERE trace_id = ?2 AND project = ?1 AND span_id IS NOT NULL
           AND (input_messages IS NOT NULL OR output_messages IS NOT NULL
                OR system_instructions IS NOT NULL)
         ORDER BY time_ns",
    )?;
    let events = stmt
        .query_map([project, trace_id], |r| {
            Ok((r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?]))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    crate::query::join_event_content(spans, events);
    Ok(())
}

/// Group key of a model call. User and session fall back to the trace's, kept in its list row
/// (the root's, else the earliest span's that has one), since instrumentations usually set them
/// on the root only.
pub(super) fn group_key_sql(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Model => "COALESCE(s.request_model, s.response_model)",
        GroupBy::Provider => "s.provider",
        GroupBy::Service => "s.service",
        GroupBy::Operation => "s.operation",
        GroupBy::User => {
            "COALESCE(s.user_id, (SELECT t.user_id FROM traces t
                WHERE t.project = s.project AND t.trace_id = s.trace_id))"
        }
        GroupBy::Session => {
            "COALESCE(s.session_id, (SELECT t.session_id FROM traces t
                WHERE t.project = s.project AND t.trace_id = s.trace_id))"
        }
    }
}

/// Whole hours and days from the rollups, the rest from raw rows (`query::rollup::plan`).
pub fn summary(conn: &Connection, q: &SummaryQuery) -> rusqlite::Result<Vec<SummaryGroup>> {
    let Some(plan) = rollup::plan(q) else {
        return Ok(summarize(calls(conn, q.group_by, &q.filter)?, q.bucket_ns));
    };
    let mut combined = rollup::Combined::new(q);
    for (from, to) in plan.raw {
        let edge = Filter {
            from_ns: Some(from),
            to_ns: Some(to),
            ..q.filter.clone()
        };
        for call in calls(conn, q.group_by, &edge)? {
            combined.add_raw(&call);
        }
    }
    let f = &q.filter;
    let dim = rollup::Dim::for_group(q.group_by).code();
    if rollup::sums_parts(q) {
        let wanted = series_ids(conn, f)?;
        let mut stmt = conn.prepare_cached(
            "SELECT value, bucket_ns, parts FROM rollups
             WHERE project = ?1 AND dim = ?2 AND width_ns = ?3 AND bucket_ns >= ?4
               AND bucket_ns < ?5",
        )?;
        for (width, from, to) in plan.rollup {
            let mut rows = stmt.query(params![f.project, dim, width, from, to])?;
            while let Some(r) = rows.next()? {
                let parts = r.get_ref(2)?.as_blob_or_null()?.unwrap_or_default();
                combined.add_parts(r.get_ref(0)?.as_str()?, r.get(1)?, parts, |id| {
                    wanted.contains(&id)
                });
            }
        }
        return Ok(combined.finish());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {key}, bucket_ns, requests, errors, input_tokens, output_tokens,
                cache_read_tokens, cost_usd, priced, latency_hist
         FROM rollups
         WHERE project = ?1 AND dim = ?2 AND width_ns = ?3 AND bucket_ns >= ?4 AND bucket_ns < ?5
           AND (?6 IS NULL OR service = ?6) AND (?7 IS NULL OR provider = ?7)
           AND (?8 IS NULL OR model = ?8 OR response_model = ?8)",
        key = rollup::Series::group_sql(q.group_by)
    ))?;
    for (width, from, to) in plan.rollup {
        let mut rows = stmt.query(params![
            f.project, dim, width, from, to, f.service, f.provider, f.model,
        ])?;
        while let Some(r) = rows.next()? {
            let sums = rollup::Sums {
                requests: r.get(2)?,
                errors: r.get(3)?,
                input_tokens: r.get(4)?,
                output_tokens: r.get(5)?,
                cache_read_tokens: r.get(6)?,
                cost_usd: r.get(7)?,
                priced: r.get(8)?,
                ..Default::default()
            };
            let hist = r.get_ref(9)?.as_blob()?;
            combined.add_encoded(r.get_ref(0)?.as_str()?, r.get(1)?, &sums, hist);
        }
    }
    Ok(combined.finish())
}

/// The ids of the call series `f`'s service, provider and model accept (`rollup::Parts`).
fn series_ids(conn: &Connection, f: &Filter) -> rusqlite::Result<HashSet<i64, FixedState>> {
    conn.prepare_cached(
        "SELECT id FROM rollup_series WHERE project = ?1 AND (?2 IS NULL OR service = ?2)
           AND (?3 IS NULL OR provider = ?3) AND (?4 IS NULL OR model = ?4 OR response_model = ?4)",
    )?
    .query_map(params![f.project, f.service, f.provider, f.model], |r| {
        r.get(0)
    })?
    .collect()
}

/// Model calls in `f`'s range from raw rows, keyed by `group_by`. Two spans describing one
/// call (an SDK's span and an instrumentation's) share a response id: the one with the most
/// complete usage counts.
fn calls(conn: &Connection, group_by: GroupBy, f: &Filter) -> rusqlite::Result<Vec<CallRow>> {
    let sql = format!(
        "SELECT key, start_time_ns, duration_ns, status_code, input_tokens, output_tokens,
                cache_read_tokens, cost_usd
         FROM (
            SELECT {key} AS key, s.start_time_ns, s.duration_ns, s.status_code, s.input_tokens,
                   s.output_tokens, s.cache_read_tokens, s.cost_usd,
                   ROW_NUMBER() OVER (
                       PARTITION BY COALESCE(s.response_id, s.trace_id || s.span_id)
                       ORDER BY s.input_tokens IS NULL, s.cost_usd IS NULL, s.start_time_ns,
                                s.span_id, s.trace_id) AS n
            FROM spans s
            WHERE s.is_model_call = 1 AND {FILTER_SQL})
         WHERE n = 1",
        key = group_key_sql(group_by)
    );
    let params = filter_params(f);
    let mut stmt = conn.prepare_cached(&sql)?;
    stmt.query_map(named(&params).as_slice(), |r| {
        Ok(CallRow {
            key: r.get(0)?,
            start_ns: r.get(1)?,
            duration_ns: r.get(2)?,
            error: r.get::<_, i64>(3)? == 2,
            input_tokens: r.get::<_, Option<i64>>(4)?.unwrap_or(0),
            output_tokens: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
            cache_read_tokens: r.get::<_, Option<i64>>(6)?.unwrap_or(0),
            cost_usd: r.get(7)?,
        })
    })?
    .collect()
}

/// Anomalies newest first. The filter's `model` matches the series model, `provider` and
/// `service` theirs; times bound the anomaly's time.
pub fn anomalies(conn: &Connection, q: &AnomalyQuery) -> rusqlite::Result<Vec<AnomalyRow>> {
    let f = &q.filter;
    let text = |v: &Option<String>| v.clone().map_or(Sql::Null, Sql::Text);
    let params = [
        (":project", Sql::Text(f.project.clone())),
        (":from", Sql::Integer(f.from_ns.unwrap_or(i64::MIN))),
        (":to", Sql::Integer(f.to_ns.unwrap_or(i64::MAX))),
        (":service", text(&f.service)),
        (":model", text(&f.model)),
        (":provider", text(&f.provider)),
        (":kind", text(&q.kind)),
        (":limit", Sql::Integer(q.limit as i64)),
    ];
    let mut stmt = conn.prepare_cached(
        "SELECT project, time_ns, kind, service, provider, model, operation, score, value,
                baseline, trace_id, span_id, message, attributes
         FROM anomalies
         WHERE project = :project AND time_ns >= :from AND time_ns < :to
           AND (:service IS NULL OR service = :service)
           AND (:model IS NULL OR model = :model)
           AND (:provider IS NULL OR provider = :provider)
           AND (:kind IS NULL OR kind = :kind)
         ORDER BY time_ns DESC
         LIMIT :limit",
    )?;
    stmt.query_map(named(&params).as_slice(), |r| {
        Ok(AnomalyRow {
            project: r.get(0)?,
            time_ns: r.get(1)?,
            kind: r.get(2)?,
            service: r.get(3)?,
            provider: r.get(4)?,
            model: r.get(5)?,
            operation: r.get(6)?,
            score: r.get(7)?,
            value: r.get(8)?,
            baseline: r.get(9)?,
            trace_id: r.get(10)?,
            span_id: r.get(11)?,
            message: r.get(12)?,
            attributes: r.get(13)?,
        })
    })?
    .collect()
}
