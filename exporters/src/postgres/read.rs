//! The query API's reads over the PostgreSQL tables: raw rows for lists and drill-downs, the
//! rollups for summaries over bucket-aligned ranges.

use std::collections::HashSet;

use foldhash::fast::FixedState;
use std::sync::Arc;

use llmscope_core::semconv::GenAiFields;
use serde_json::Value as J;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PostgresError, PostgresStore, pool_error};
use crate::query::{
    AnomalyQuery, CallRow, Filter, GroupBy, SummaryGroup, SummaryQuery, TracePage, TraceQuery,
    TraceSummary, summarize,
};
use crate::query::{rollup, trace_list};
use crate::record::{AnomalyRow, JsonMap, SpanRecord};

type Result<T> = std::result::Result<T, PostgresError>;

/// SQL text with positional parameters added as it is written.
#[derive(Default)]
pub(super) struct Sql {
    text: String,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends `before`, then a placeholder bound to `value`.
    pub(super) fn bind<T: ToSql + Sync + Send + 'static>(
        &mut self,
        before: &str,
        value: T,
    ) -> &mut Self {
        self.values.push(Box::new(value));
        self.text.push_str(before);
        self.text.push_str(&format!("${}", self.values.len()));
        self
    }

    pub(super) async fn query(&self, store: &PostgresStore) -> Result<Vec<Row>> {
        let client = store.pool().get().await.map_err(pool_error)?;
        let params: Vec<&(dyn ToSql + Sync)> = self
            .values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        Ok(client.query(&self.text, &params).await?)
    }
}

pub(super) fn span_filter(sql: &mut Sql, f: &Filter) {
    sql.bind(" s.project = ", f.project.clone());
    if let Some(from) = f.from_ns {
        sql.bind(" AND s.start_time_ns >= ", from);
    }
    if let Some(to) = f.to_ns {
        sql.bind(" AND s.start_time_ns < ", to);
    }
    if let Some(service) = &f.service {
        sql.bind(" AND s.service = ", service.clone());
    }
    if let Some(model) = &f.model {
        sql.bind(" AND (s.request_model = ", model.clone())
            .bind(" OR s.response_model = ", model.clone())
            .push(")");
    }
    if let Some(provider) = &f.provider {
        sql.bind(" AND s.provider = ", provider.clone());
    }
}

/// One page of the trace list, newest first: a keyset scan of `traces_by_start`, or with a
/// filter of `trace_keys` (any further key checked by primary key), joined to the rows.
pub async fn traces(store: &PostgresStore, q: &TraceQuery) -> Result<TracePage> {
    let f = &q.filter;
    let keys = trace_list::list_keys(q);
    let mut sql = Sql::default();
    sql.push(
        "SELECT t.trace_id, t.service, t.root_name, t.start_ns, t.duration_ns, t.span_count,
                t.llm_calls, t.input_tokens, t.output_tokens, t.cost_usd, t.error FROM ",
    );
    match keys.split_first() {
        None => {
            sql.push("traces t")
                .bind(" WHERE t.project = ", f.project.clone())
                .push(" AND true");
        }
        Some((first, rest)) => {
            sql.push(
                "trace_keys k JOIN traces t ON t.project = k.project AND t.trace_id = k.trace_id",
            )
            .bind(" WHERE k.project = ", f.project.clone())
            .bind(" AND k.key = ", first.clone());
            for key in rest {
                sql.push(
                    " AND EXISTS (SELECT 1 FROM trace_keys x WHERE x.project = k.project
                        AND x.start_ns = k.start_ns AND x.trace_id = k.trace_id",
                )
                .bind(" AND x.key = ", key.clone())
                .push(")");
            }
        }
    }
    // The scanned table's columns: the key rows' when filtered, so the index orders the scan.
    let scan = if keys.is_empty() { "t" } else { "k" };
    if let Some(from) = f.from_ns {
        sql.bind(&format!(" AND {scan}.start_ns >= "), from);
    }
    if let Some(to) = f.to_ns {
        sql.bind(&format!(" AND {scan}.start_ns < "), to);
    }
    if let Some(c) = &q.cursor {
        sql.bind(
            &format!(" AND ({scan}.start_ns, {scan}.trace_id) < ("),
            c.start_ns,
        )
        .bind(", ", c.trace_id.clone())
        .push(")");
    }
    sql.bind(
        &format!(" ORDER BY {scan}.start_ns DESC, {scan}.trace_id DESC LIMIT "),
        q.limit as i64 + 1,
    );
    let traces = sql
        .query(store)
        .await?
        .iter()
        .map(|r| TraceSummary {
            trace_id: r.get(0),
            service: r.get(1),
            root_name: r.get(2),
            start_ns: r.get(3),
            duration_ns: r.get(4),
            span_count: r.get(5),
            llm_calls: r.get(6),
            input_tokens: r.get(7),
            output_tokens: r.get(8),
            cost_usd: r.get(9),
            error: r.get(10),
        })
        .collect();
    Ok(TracePage::paginate(traces, q.limit))
}

fn object(v: J) -> JsonMap {
    match v {
        J::Object(m) => m,
        _ => JsonMap::new(),
    }
}

fn span_from_row(r: &Row) -> SpanRecord {
    let mut span = SpanRecord {
        project: r.get("project"),
        trace_id: r.get("trace_id"),
        span_id: r.get("span_id"),
        parent_span_id: r.get("parent_span_id"),
        name: r.get("name"),
        kind: i32::from(r.get::<_, i16>("kind")),
        service: r.get("service"),
        scope_name: r.get("scope_name"),
        start_time_ns: r.get("start_time_ns"),
        end_time_ns: r.get("end_time_ns"),
        status_code: i32::from(r.get::<_, i16>("status_code")),
        status_message: r.get("status_message"),
        gen_ai: GenAiFields {
            operation: r.get("operation"),
            provider: r.get("provider"),
            request_model: r.get("request_model"),
            response_model: r.get("response_model"),
            response_id: r.get("response_id"),
            input_tokens: r.get("input_tokens"),
            output_tokens: r.get("output_tokens"),
            cache_read_tokens: r.get("cache_read_tokens"),
            cache_write_tokens: r.get("cache_write_tokens"),
            reasoning_tokens: r.get("reasoning_tokens"),
            cost_usd: r.get("cost_usd"),
            session_id: r.get("session_id"),
            user_id: r.get("user_id"),
            conversation_id: r.get("conversation_id"),
            input_messages: r.get("input_messages"),
            output_messages: r.get("output_messages"),
            system_instructions: r.get("system_instructions"),
            is_model_call: r.get("is_model_call"),
        },
        attributes: object(r.get("attributes")),
        // Stored once in `resources`; rows written before keep their own.
        resource_attributes: Arc::new(object(
            r.get::<_, Option<J>>("resource")
                .or_else(|| r.get("resource_attributes"))
                .unwrap_or(J::Null),
        )),
        events: r.get::<_, J>("events").to_string(),
        links: r.get::<_, J>("links").to_string(),
    };
    crate::record::restore_typed(&mut span.attributes, &span.gen_ai);
    span
}

pub async fn trace(
    store: &PostgresStore,
    project: &str,
    trace_id: &str,
) -> Result<Option<Vec<SpanRecord>>> {
    let client = store.pool().get().await.map_err(pool_error)?;
    let rows = client
        .query(
            "SELECT s.*, r.attributes AS resource FROM spans s
             LEFT JOIN resources r ON r.project = s.project AND r.id = s.resource_id
             WHERE s.project = $1 AND s.trace_id = $2 ORDER BY s.start_time_ns, s.span_id",
            &[&project, &trace_id],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut spans: Vec<SpanRecord> = rows.iter().map(span_from_row).collect();
    let events = client
        .query(
            "SELECT span_id, input_messages, output_messages, system_instructions FROM logs
             WHERE project = $1 AND trace_id = $2 AND span_id IS NOT NULL
               AND (input_messages IS NOT NULL OR output_messages IS NOT NULL OR system_instructions IS NOT NULL)
             ORDER BY time_ns",
            &[&project, &trace_id],
        )
        .await?;
    crate::query::join_event_content(
        &mut spans,
        events
            .iter()
            .map(|r| (r.get(0), [r.get(1), r.get(2), r.get(3)])),
    );
    Ok(Some(spans))
}

/// Group key of a model call: user and session fall back to the trace's, kept in its list row
/// (the root's, else the earliest span's that has one).
pub(super) fn group_key(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Model => "coalesce(s.request_model, s.response_model)",
        GroupBy::Provider => "s.provider",
        GroupBy::Service => "s.service",
        GroupBy::Operation => "s.operation",
        GroupBy::User => {
            "coalesce(s.user_id, (SELECT t.user_id FROM traces t
                WHERE t.project = s.project AND t.trace_id = s.trace_id))"
        }
        GroupBy::Session => {
            "coalesce(s.session_id, (SELECT t.session_id FROM traces t
                WHERE t.project = s.project AND t.trace_id = s.trace_id))"
        }
    }
}

/// Whole hours and days from the rollups, the rest from raw rows (`query::rollup::plan`).
pub async fn summary(store: &PostgresStore, q: &SummaryQuery) -> Result<Vec<SummaryGroup>> {
    let Some(plan) = rollup::plan(q) else {
        return Ok(summarize(
            calls(store, q.group_by, &q.filter).await?,
            q.bucket_ns,
        ));
    };
    let mut combined = rollup::Combined::new(q);
    for (from, to) in plan.raw {
        let edge = Filter {
            from_ns: Some(from),
            to_ns: Some(to),
            ..q.filter.clone()
        };
        for call in calls(store, q.group_by, &edge).await? {
            combined.add_raw(&call);
        }
    }
    let f = &q.filter;
    let dim = rollup::Dim::for_group(q.group_by).code();
    if rollup::sums_parts(q) {
        let client = store.pool().get().await.map_err(pool_error)?;
        let wanted: HashSet<i64, FixedState> = client
            .query(
                "SELECT id FROM rollup_series WHERE project = $1
                   AND ($2::text IS NULL OR service = $2) AND ($3::text IS NULL OR provider = $3)
                   AND ($4::text IS NULL OR model = $4 OR response_model = $4)",
                &[&f.project, &f.service, &f.provider, &f.model],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (width, from, to) in plan.rollup {
            let rows = client
                .query(
                    "SELECT value, bucket_ns, parts FROM rollups
                     WHERE project = $1 AND dim = $2 AND width_ns = $3 AND bucket_ns >= $4
                       AND bucket_ns < $5",
                    &[&f.project, &dim, &width, &from, &to],
                )
                .await?;
            for r in rows {
                let parts: Option<&[u8]> = r.get(2);
                combined.add_parts(r.get(0), r.get(1), parts.unwrap_or_default(), |id| {
                    wanted.contains(&id)
                });
            }
        }
        return Ok(combined.finish());
    }
    for (width, from, to) in plan.rollup {
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT {key}, bucket_ns, requests, errors, input_tokens, output_tokens,
                    cache_read_tokens, cost_usd, priced, latency_hist
             FROM rollups WHERE",
            key = rollup::Series::group_sql(q.group_by)
        ))
        .bind(" project = ", f.project.clone())
        .bind(" AND dim = ", dim)
        .bind(" AND width_ns = ", width)
        .bind(" AND bucket_ns >= ", from)
        .bind(" AND bucket_ns < ", to);
        if let Some(service) = &f.service {
            sql.bind(" AND service = ", service.clone());
        }
        if let Some(provider) = &f.provider {
            sql.bind(" AND provider = ", provider.clone());
        }
        if let Some(model) = &f.model {
            sql.bind(" AND (model = ", model.clone())
                .bind(" OR response_model = ", model.clone())
                .push(")");
        }
        for r in sql.query(store).await? {
            let sums = rollup::Sums {
                requests: r.get(2),
                errors: r.get(3),
                input_tokens: r.get(4),
                output_tokens: r.get(5),
                cache_read_tokens: r.get(6),
                cost_usd: r.get(7),
                priced: r.get(8),
                ..Default::default()
            };
            combined.add_encoded(r.get(0), r.get(1), &sums, r.get(9));
        }
    }
    Ok(combined.finish())
}

/// Model calls in `f`'s range from raw rows, keyed by `group_by`; of spans sharing a response
/// id, the one with the most complete usage.
async fn calls(store: &PostgresStore, group_by: GroupBy, f: &Filter) -> Result<Vec<CallRow>> {
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT key, start_time_ns, duration_ns, status_code, input_tokens, output_tokens,
                cache_read_tokens, cost_usd
         FROM (
            SELECT {key} AS key, s.start_time_ns, s.duration_ns, s.status_code, s.input_tokens,
                   s.output_tokens, s.cache_read_tokens, s.cost_usd,
                   row_number() OVER (
                       PARTITION BY coalesce(s.response_id, s.trace_id || s.span_id)
                       ORDER BY s.input_tokens IS NULL, s.cost_usd IS NULL, s.start_time_ns, s.span_id, s.trace_id) AS n
            FROM spans s WHERE s.is_model_call AND",
        key = group_key(group_by)
    ));
    span_filter(&mut sql, f);
    sql.push(") calls WHERE n = 1");
    Ok(sql
        .query(store)
        .await?
        .iter()
        .map(|r| CallRow {
            key: r.get(0),
            start_ns: r.get(1),
            duration_ns: r.get(2),
            error: r.get::<_, i16>(3) == 2,
            input_tokens: r.get::<_, Option<i64>>(4).unwrap_or(0),
            output_tokens: r.get::<_, Option<i64>>(5).unwrap_or(0),
            cache_read_tokens: r.get::<_, Option<i64>>(6).unwrap_or(0),
            cost_usd: r.get(7),
        })
        .collect())
}

pub async fn anomalies(store: &PostgresStore, q: &AnomalyQuery) -> Result<Vec<AnomalyRow>> {
    let f = &q.filter;
    let mut sql = Sql::default();
    sql.push(
        "SELECT project, time_ns, kind, service, provider, model, operation, score, value, baseline,
                trace_id, span_id, message, attributes FROM anomalies WHERE",
    )
    .bind(" project = ", f.project.clone());
    if let Some(from) = f.from_ns {
        sql.bind(" AND time_ns >= ", from);
    }
    if let Some(to) = f.to_ns {
        sql.bind(" AND time_ns < ", to);
    }
    for (column, value) in [
        ("service", &f.service),
        ("model", &f.model),
        ("provider", &f.provider),
        ("kind", &q.kind),
    ] {
        if let Some(v) = value {
            sql.bind(&format!(" AND {column} = "), v.clone());
        }
    }
    sql.bind(" ORDER BY time_ns DESC LIMIT ", q.limit as i64);
    Ok(sql
        .query(store)
        .await?
        .iter()
        .map(|r| AnomalyRow {
            project: r.get(0),
            time_ns: r.get(1),
            kind: r.get(2),
            service: r.get(3),
            provider: r.get(4),
            model: r.get(5),
            operation: r.get(6),
            score: r.get(7),
            value: r.get(8),
            baseline: r.get(9),
            trace_id: r.get(10),
            span_id: r.get(11),
            message: r.get(12),
            attributes: r.get::<_, J>(13).to_string(),
        })
        .collect())
}
