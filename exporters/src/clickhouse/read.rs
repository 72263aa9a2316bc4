//! The query API's reads over the ClickHouse tables: raw rows for lists and drill-downs, the
//! rollups for summaries over bucket-aligned ranges.

use std::collections::HashMap;
use std::sync::Arc;

use clickhouse::Row;
use llmscope_core::semconv::GenAiFields;
use serde::Deserialize;
use serde_json::Value as J;

use super::{ClickHouseError, ClickHouseStore, classify};
use crate::query::{
    AnomalyQuery, CallRow, Filter, GroupBy, Latency, SummaryGroup, SummaryQuery, TracePage,
    TraceQuery, TraceSummary, sort_groups, summarize,
};
use crate::record::{AnomalyRow, JsonMap, SpanRecord};

type Result<T> = std::result::Result<T, ClickHouseError>;

/// SQL text and its bound values, in order (`?` placeholders).
#[derive(Default)]
struct Sql {
    text: String,
    binds: Vec<Bind>,
}

enum Bind {
    Str(String),
    Int(i64),
}

impl Sql {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    fn str(&mut self, text: &str, value: &str) -> &mut Self {
        self.text.push_str(text);
        self.binds.push(Bind::Str(value.to_owned()));
        self
    }

    fn int(&mut self, text: &str, value: i64) -> &mut Self {
        self.text.push_str(text);
        self.binds.push(Bind::Int(value));
        self
    }

    fn query(&self, store: &ClickHouseStore) -> clickhouse::query::Query {
        let mut q = store.client().query(&self.text);
        for b in &self.binds {
            q = match b {
                Bind::Str(s) => q.bind(s.as_str()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

/// `AND ...` clauses for a filter on the `spans` columns (alias `s`).
fn span_filter(sql: &mut Sql, f: &Filter) {
    sql.str(" s.project = ?", &f.project);
    if let Some(from) = f.from_ns {
        sql.int(
            " AND s.start_time >= fromUnixTimestamp64Nano(?, 'UTC')",
            from,
        );
    }
    if let Some(to) = f.to_ns {
        sql.int(" AND s.start_time < fromUnixTimestamp64Nano(?, 'UTC')", to);
    }
    if let Some(service) = &f.service {
        sql.str(" AND s.service = ?", service);
    }
    if let Some(model) = &f.model {
        sql.str(" AND (s.request_model = ?", model)
            .str(" OR s.response_model = ?)", model);
    }
    if let Some(provider) = &f.provider {
        sql.str(" AND s.provider = ?", provider);
    }
}

fn ids_list(sql: &mut Sql, ids: &[String]) {
    sql.push(" (");
    for (i, id) in ids.iter().enumerate() {
        sql.str(if i == 0 { "?" } else { ", ?" }, id);
    }
    sql.push(")");
}

#[derive(Row, Deserialize)]
struct TraceRow {
    trace_id: String,
    end_ns: i64,
    span_count: u64,
    error: u8,
    root_name: String,
    service: String,
}

#[derive(Row, Deserialize)]
struct CallTotalsRow {
    trace_id: String,
    calls: u64,
    input_tokens: i64,
    output_tokens: i64,
    cost_usd: f64,
    priced: u64,
}

fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// One page of the trace list, newest first. Traces are looked for in a window of trace starts
/// below the page's upper bound (`to`, the cursor, or the newest trace), from `trace_index`;
/// the window grows eightfold (an hour, 8 h, 64 h, ...) until it holds more than a page or
/// reaches back to `from` or the beginning. Any trace starting inside the window is a
/// candidate, so a full page from a window is the page.
pub async fn traces(store: &ClickHouseStore, q: &TraceQuery) -> Result<TracePage> {
    const HOUR_NS: i64 = 3_600_000_000_000;
    let f = &q.filter;
    let db = store.database();
    let hi = match (f.to_ns, q.cursor.as_ref().map(|c| c.start_ns + 1)) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    };
    let hi = match hi {
        Some(hi) => hi,
        None => {
            let mut sql = Sql::default();
            sql.push(&format!(
                "SELECT toUnixTimestamp64Nano(max(start_min)) + 1 FROM {db}.trace_index WHERE"
            ))
            .str(" project = ?", &f.project);
            sql.query(store)
                .fetch_one::<i64>()
                .await
                .map_err(classify)?
        }
    };
    let mut width = HOUR_NS;
    let rows = loop {
        let lo = hi
            .checked_sub(width)
            .filter(|lo| f.from_ns.is_none_or(|from| *lo > from) && width < 1 << 62);
        let rows: Vec<TraceStart> = page_sql(db, q, lo, hi)
            .query(store)
            .fetch_all()
            .await
            .map_err(classify)?;
        if rows.len() > q.limit || lo.is_none() {
            break rows;
        }
        width = width.saturating_mul(8);
    };
    // The page's spans, found by the bloom filter on trace id and the primary key on time:
    // every span of a trace starts at or after the trace.
    let mut spans_of: HashMap<String, TraceRow> = HashMap::new();
    if let Some(oldest) = rows.iter().map(|r| r.start_ns).min() {
        let ids: Vec<String> = rows.iter().map(|r| r.trace_id.clone()).collect();
        let mut sql = Sql::default();
        sql.push(&format!(
            "SELECT trace_id, toUnixTimestamp64Nano(max(end_time)) AS end_ns, count() AS span_count,
                    toUInt8(max(status_code = 2)) AS error,
                    argMin(name, (parent_span_id != '', start_time, span_id)) AS root_name,
                    argMin(service, (parent_span_id != '', start_time, span_id)) AS service
             FROM {db}.spans WHERE"
        ))
        .str(" project = ?", &f.project)
        .int(
            " AND start_time >= fromUnixTimestamp64Nano(?, 'UTC')",
            oldest,
        )
        .push(" AND trace_id IN");
        ids_list(&mut sql, &ids);
        sql.push(" GROUP BY trace_id");
        for r in sql
            .query(store)
            .fetch_all::<TraceRow>()
            .await
            .map_err(classify)?
        {
            spans_of.insert(r.trace_id.clone(), r);
        }
    }
    let traces: Vec<TraceSummary> = rows
        .into_iter()
        .filter_map(|t| {
            let r = spans_of.remove(&t.trace_id)?;
            Some(TraceSummary {
                trace_id: t.trace_id,
                service: none_if_empty(r.service),
                root_name: Some(r.root_name),
                start_ns: t.start_ns,
                duration_ns: (r.end_ns - t.start_ns).max(0),
                span_count: r.span_count as i64,
                llm_calls: 0,
                input_tokens: 0,
                output_tokens: 0,
                cost_usd: None,
                error: r.error != 0,
            })
        })
        .collect();
    let mut page = TracePage::paginate(traces, q.limit);
    if !page.traces.is_empty() {
        // Every span of the page's traces starts at or after the oldest of them.
        let oldest = page
            .traces
            .iter()
            .map(|t| t.start_ns)
            .min()
            .unwrap_or(i64::MIN);
        fill_trace_details(store, &q.filter.project, &mut page.traces, oldest).await?;
    }
    Ok(page)
}

/// The page's trace ids and starts, from `trace_index`, over traces starting in `[lo, hi)` (at
/// any time before `hi` when `lo` is `None`).
fn page_sql(db: &str, q: &TraceQuery, lo: Option<i64>, hi: i64) -> Sql {
    let f = &q.filter;
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT trace_id, toUnixTimestamp64Nano(min(start_min)) AS start_ns
         FROM {db}.trace_index WHERE"
    ))
    .str(" project = ?", &f.project);
    if let Some(lo) = lo {
        sql.push(&format!(
            " AND trace_id IN (SELECT trace_id FROM {db}.trace_index WHERE"
        ))
        .str(" project = ?", &f.project)
        .int(" AND start_min >= fromUnixTimestamp64Nano(?, 'UTC')", lo)
        .int(" AND start_min < fromUnixTimestamp64Nano(?, 'UTC'))", hi);
    }
    // Spans of a trace starting at `from` (or in the window) start there or later.
    let floor = match (f.from_ns, lo) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    // As `query::trace_list` defines the list: a span of each filter key (any span, one per
    // key); the trace's own start decides below.
    let keys: [(&str, Option<&String>); 3] = [
        ("service = ?", f.service.as_ref()),
        (
            "(request_model = ? OR response_model = ?)",
            f.model.as_ref(),
        ),
        ("provider = ?", f.provider.as_ref()),
    ];
    for (condition, value) in keys {
        let Some(value) = value else { continue };
        sql.push(&format!(
            " AND trace_id IN (SELECT trace_id FROM {db}.spans WHERE"
        ))
        .str(" project = ?", &f.project);
        if let Some(from) = floor {
            sql.int(" AND start_time >= fromUnixTimestamp64Nano(?, 'UTC')", from);
        }
        sql.push(" AND ");
        for (i, part) in condition.split('?').enumerate() {
            if i > 0 {
                sql.str("?", value);
            }
            sql.push(part);
        }
        sql.push(")");
    }
    sql.push(" GROUP BY trace_id HAVING 1");
    if let Some(from) = floor {
        sql.int(" AND start_ns >= ?", from);
    }
    if let Some(to) = f.to_ns {
        sql.int(" AND start_ns < ?", to);
    }
    if let Some(c) = &q.cursor {
        sql.int(" AND (start_ns < ?", c.start_ns)
            .int(" OR (start_ns = ?", c.start_ns)
            .str(" AND trace_id < ?))", &c.trace_id);
    }
    sql.int(
        " ORDER BY start_ns DESC, trace_id DESC LIMIT ?",
        q.limit as i64 + 1,
    );
    sql
}

#[derive(Row, Deserialize)]
struct TraceStart {
    trace_id: String,
    start_ns: i64,
}

/// Model-call totals of the page's traces, each call counted once.
async fn fill_trace_details(
    store: &ClickHouseStore,
    project: &str,
    traces: &mut [TraceSummary],
    oldest: i64,
) -> Result<()> {
    let db = store.database();
    let ids: Vec<String> = traces.iter().map(|t| t.trace_id.clone()).collect();
    let index: HashMap<String, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), i))
        .collect();

    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT trace_id, count() AS calls, sum(it) AS input_tokens, sum(ot) AS output_tokens,
                sum(ifNull(c, 0)) AS cost_usd, countIf(c IS NOT NULL) AS priced
         FROM (SELECT trace_id, max(ifNull(input_tokens, 0)) AS it, max(ifNull(output_tokens, 0)) AS ot,
                      max(cost_usd) AS c
               FROM {db}.spans WHERE"
    ));
    sql.str(" project = ?", project)
        .int(
            " AND start_time >= fromUnixTimestamp64Nano(?, 'UTC')",
            oldest,
        )
        .push(" AND is_model_call = 1 AND trace_id IN");
    ids_list(&mut sql, &ids);
    sql.push(" GROUP BY trace_id, if(response_id != '', response_id, span_id)) GROUP BY trace_id");
    for r in sql
        .query(store)
        .fetch_all::<CallTotalsRow>()
        .await
        .map_err(classify)?
    {
        if let Some(&i) = index.get(&r.trace_id) {
            let t = &mut traces[i];
            t.llm_calls = r.calls as i64;
            t.input_tokens = r.input_tokens;
            t.output_tokens = r.output_tokens;
            t.cost_usd = (r.priced > 0).then_some(r.cost_usd);
        }
    }
    Ok(())
}

#[derive(Row, Deserialize)]
struct SpanRow {
    project: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i8,
    service: String,
    scope_name: String,
    start_ns: i64,
    end_ns: i64,
    status_code: i8,
    status_message: String,
    operation: String,
    provider: String,
    request_model: String,
    response_model: String,
    response_id: String,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cache_read_tokens: Option<i64>,
    cache_write_tokens: Option<i64>,
    reasoning_tokens: Option<i64>,
    cost_usd: Option<f64>,
    session_id: String,
    user_id: String,
    conversation_id: String,
    is_model_call: u8,
    input_messages: String,
    output_messages: String,
    system_instructions: String,
    attribute_keys: Vec<String>,
    attribute_values: Vec<String>,
    resource_keys: Vec<String>,
    resource_values: Vec<String>,
    events: String,
    links: String,
}

/// A `Map` column read as keys and JSON-text values, back to JSON values.
fn json_map(keys: Vec<String>, values: Vec<String>) -> JsonMap {
    keys.into_iter()
        .zip(values)
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).unwrap_or(J::String(v));
            (k, value)
        })
        .collect()
}

impl From<SpanRow> for SpanRecord {
    fn from(r: SpanRow) -> Self {
        SpanRecord {
            project: r.project,
            trace_id: r.trace_id,
            span_id: r.span_id,
            parent_span_id: none_if_empty(r.parent_span_id),
            name: r.name,
            kind: i32::from(r.kind),
            service: none_if_empty(r.service),
            scope_name: none_if_empty(r.scope_name),
            start_time_ns: r.start_ns,
            end_time_ns: r.end_ns,
            status_code: i32::from(r.status_code),
            status_message: none_if_empty(r.status_message),
            gen_ai: GenAiFields {
                operation: none_if_empty(r.operation),
                provider: none_if_empty(r.provider),
                request_model: none_if_empty(r.request_model),
                response_model: none_if_empty(r.response_model),
                response_id: none_if_empty(r.response_id),
                input_tokens: r.input_tokens,
                output_tokens: r.output_tokens,
                cache_read_tokens: r.cache_read_tokens,
                cache_write_tokens: r.cache_write_tokens,
                reasoning_tokens: r.reasoning_tokens,
                cost_usd: r.cost_usd,
                session_id: none_if_empty(r.session_id),
                user_id: none_if_empty(r.user_id),
                conversation_id: none_if_empty(r.conversation_id),
                input_messages: none_if_empty(r.input_messages),
                output_messages: none_if_empty(r.output_messages),
                system_instructions: none_if_empty(r.system_instructions),
                is_model_call: r.is_model_call != 0,
            },
            attributes: json_map(r.attribute_keys, r.attribute_values),
            resource_attributes: Arc::new(json_map(r.resource_keys, r.resource_values)),
            events: r.events,
            links: r.links,
        }
    }
}

#[derive(Row, Deserialize)]
struct RangeRow {
    spans: u64,
    start_min: i64,
    start_max: i64,
}

#[derive(Row, Deserialize)]
struct ContentRow {
    span_id: String,
    input_messages: String,
    output_messages: String,
    system_instructions: String,
}

pub async fn trace(
    store: &ClickHouseStore,
    project: &str,
    trace_id: &str,
) -> Result<Option<Vec<SpanRecord>>> {
    let db = store.database();
    // The trace's time range from the lookup table narrows the scan to its partitions.
    let range: RangeRow = store
        .client()
        .query(&format!(
            "SELECT count() AS spans, toUnixTimestamp64Nano(min(start_min)) AS start_min,
                    toUnixTimestamp64Nano(max(start_max)) AS start_max
             FROM {db}.trace_index WHERE project = ? AND trace_id = ?"
        ))
        .bind(project)
        .bind(trace_id)
        .fetch_one()
        .await
        .map_err(classify)?;
    if range.spans == 0 {
        return Ok(None);
    }
    let rows: Vec<SpanRow> = store
        .client()
        .query(&format!(
            "SELECT project, trace_id, span_id, parent_span_id, name, kind, service, scope_name,
                    toUnixTimestamp64Nano(start_time) AS start_ns, toUnixTimestamp64Nano(end_time) AS end_ns,
                    status_code, status_message, operation, provider, request_model, response_model,
                    response_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                    reasoning_tokens, cost_usd, session_id, user_id, conversation_id, is_model_call,
                    input_messages, output_messages, system_instructions,
                    mapKeys(attributes) AS attribute_keys, mapValues(attributes) AS attribute_values,
                    mapKeys(resource_attributes) AS resource_keys,
                    mapValues(resource_attributes) AS resource_values, events, links
             FROM {db}.spans
             WHERE project = ? AND trace_id = ?
               AND start_time >= fromUnixTimestamp64Nano(?, 'UTC')
               AND start_time <= fromUnixTimestamp64Nano(?, 'UTC')
             ORDER BY start_time, span_id
             LIMIT 1 BY span_id"
        ))
        .bind(project)
        .bind(trace_id)
        .bind(range.start_min)
        .bind(range.start_max)
        .fetch_all()
        .await
        .map_err(classify)?;
    let mut spans: Vec<SpanRecord> = rows.into_iter().map(SpanRecord::from).collect();
    if spans.is_empty() {
        return Ok(None);
    }
    let content: Vec<ContentRow> = store
        .client()
        .query(&format!(
            "SELECT span_id, input_messages, output_messages, system_instructions FROM {db}.logs
             WHERE project = ? AND trace_id = ? AND span_id != ''
               AND (input_messages != '' OR output_messages != '' OR system_instructions != '')
             ORDER BY time"
        ))
        .bind(project)
        .bind(trace_id)
        .fetch_all()
        .await
        .map_err(classify)?;
    crate::query::join_event_content(
        &mut spans,
        content.into_iter().map(|c| {
            (
                c.span_id,
                [
                    none_if_empty(c.input_messages),
                    none_if_empty(c.output_messages),
                    none_if_empty(c.system_instructions),
                ],
            )
        }),
    );
    Ok(Some(spans))
}

#[derive(Row, Deserialize)]
struct CallSelect {
    key: String,
    start_ns: i64,
    duration_ns: i64,
    status_code: i8,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cache_read_tokens: Option<i64>,
    cost_usd: Option<f64>,
}

/// The group key over spans `s` (and, for user and session, `t`: the trace's value when the span
/// has none, as instrumentations set them on the root).
fn group_key(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Model => "if(s.request_model != '', s.request_model, s.response_model)",
        GroupBy::Provider => "s.provider",
        GroupBy::Service => "s.service",
        GroupBy::Operation => "s.operation",
        GroupBy::User => "if(s.user_id != '', s.user_id, t.trace_user)",
        GroupBy::Session => "if(s.session_id != '', s.session_id, t.trace_session)",
    }
}

pub async fn summary(store: &ClickHouseStore, q: &SummaryQuery) -> Result<Vec<SummaryGroup>> {
    match q.rollup_width() {
        Some(3_600_000_000_000) => summary_from_rollup(store, q, "calls_1h").await,
        Some(_) => summary_from_rollup(store, q, "calls_1d").await,
        None => summary_from_rows(store, q).await,
    }
}

async fn summary_from_rows(store: &ClickHouseStore, q: &SummaryQuery) -> Result<Vec<SummaryGroup>> {
    let db = store.database();
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {key} AS key, toUnixTimestamp64Nano(s.start_time) AS start_ns, s.duration_ns AS duration_ns,
                s.status_code AS status_code, s.input_tokens AS input_tokens, s.output_tokens AS output_tokens,
                s.cache_read_tokens AS cache_read_tokens, s.cost_usd AS cost_usd
         FROM {db}.spans AS s",
        key = group_key(q.group_by)
    ));
    if matches!(q.group_by, GroupBy::User | GroupBy::Session) {
        sql.push(&format!(
            " LEFT JOIN (SELECT trace_id,
                         argMinIf(user_id, (parent_span_id != '', start_time, span_id), user_id != '')
                             AS trace_user,
                         argMinIf(session_id, (parent_span_id != '', start_time, span_id), session_id != '')
                             AS trace_session
                  FROM {db}.spans WHERE"
        ));
        sql.str(" project = ?", &q.filter.project)
            .push(" GROUP BY trace_id) AS t ON t.trace_id = s.trace_id");
    }
    sql.push(" WHERE s.is_model_call = 1 AND");
    span_filter(&mut sql, &q.filter);
    // One row per model call: of spans sharing a response id, the one with the most complete
    // usage (the same choice as every store).
    sql.push(
        " ORDER BY isNull(s.input_tokens), isNull(s.cost_usd), s.start_time, s.span_id, s.trace_id
          LIMIT 1 BY if(s.response_id != '', s.response_id, concat(s.trace_id, s.span_id))",
    );
    let rows: Vec<CallSelect> = sql.query(store).fetch_all().await.map_err(classify)?;
    let calls = rows
        .into_iter()
        .map(|r| CallRow {
            key: none_if_empty(r.key),
            start_ns: r.start_ns,
            duration_ns: r.duration_ns,
            error: r.status_code == 2,
            input_tokens: r.input_tokens.unwrap_or(0),
            output_tokens: r.output_tokens.unwrap_or(0),
            cache_read_tokens: r.cache_read_tokens.unwrap_or(0),
            cost_usd: r.cost_usd,
        })
        .collect();
    Ok(summarize(calls, q.bucket_ns))
}

#[derive(Row, Deserialize)]
struct RollupRow {
    key: String,
    bucket_s: i64,
    requests: u64,
    errors: u64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cost_usd: f64,
    priced: u64,
    latency_ms: Vec<f64>,
}

async fn summary_from_rollup(
    store: &ClickHouseStore,
    q: &SummaryQuery,
    table: &str,
) -> Result<Vec<SummaryGroup>> {
    let db = store.database();
    let key = match q.group_by {
        GroupBy::Model => "model",
        GroupBy::Provider => "provider",
        GroupBy::Service => "service",
        _ => "operation",
    };
    let bucket = match q.bucket_ns {
        Some(b) => format!(
            "intDiv(toUnixTimestamp(bucket), {0}) * {0}",
            b / 1_000_000_000
        ),
        None => "toInt64(0)".to_owned(),
    };
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT {key} AS key, toInt64({bucket}) AS bucket_s, sum(requests) AS requests, sum(errors) AS errors,
                sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                sum(cache_read_tokens) AS cache_read_tokens, sum(cost_usd) AS cost_usd,
                sum(priced) AS priced,
                arrayMap(x -> toFloat64(x), quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_ms)) AS latency_ms
         FROM {db}.{table} WHERE"
    ));
    sql.str(" project = ?", &q.filter.project);
    if let Some(from) = q.filter.from_ns {
        sql.int(
            " AND bucket >= toDateTime(intDiv(?, 1000000000), 'UTC')",
            from,
        );
    }
    if let Some(to) = q.filter.to_ns {
        sql.int(" AND bucket < toDateTime(intDiv(?, 1000000000), 'UTC')", to);
    }
    if let Some(service) = &q.filter.service {
        sql.str(" AND service = ?", service);
    }
    if let Some(provider) = &q.filter.provider {
        sql.str(" AND provider = ?", provider);
    }
    sql.push(" GROUP BY key, bucket_s");
    let rows: Vec<RollupRow> = sql.query(store).fetch_all().await.map_err(classify)?;
    let mut groups: Vec<SummaryGroup> = rows
        .into_iter()
        .map(|r| SummaryGroup {
            key: none_if_empty(r.key),
            bucket_start_ns: q.bucket_ns.map(|_| r.bucket_s * 1_000_000_000),
            requests: r.requests as i64,
            errors: r.errors as i64,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_read_tokens: r.cache_read_tokens,
            cost_usd: (r.priced > 0).then_some(r.cost_usd),
            latency: Latency {
                p50_ms: r.latency_ms.first().copied().unwrap_or(0.0),
                p95_ms: r.latency_ms.get(1).copied().unwrap_or(0.0),
                p99_ms: r.latency_ms.get(2).copied().unwrap_or(0.0),
            },
        })
        .collect();
    sort_groups(&mut groups);
    Ok(groups)
}

#[derive(Row, Deserialize)]
struct AnomalySelect {
    project: String,
    time_ns: i64,
    kind: String,
    service: String,
    provider: String,
    model: String,
    operation: String,
    score: f64,
    value: f64,
    baseline: f64,
    trace_id: String,
    span_id: String,
    message: String,
    attribute_keys: Vec<String>,
    attribute_values: Vec<String>,
}

pub async fn anomalies(store: &ClickHouseStore, q: &AnomalyQuery) -> Result<Vec<AnomalyRow>> {
    let db = store.database();
    let f = &q.filter;
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT project, toUnixTimestamp64Nano(time) AS time_ns, kind, service, provider, model, operation,
                score, value, baseline, trace_id, span_id, message,
                mapKeys(attributes) AS attribute_keys, mapValues(attributes) AS attribute_values
         FROM {db}.anomalies WHERE"
    ));
    sql.str(" project = ?", &f.project);
    if let Some(from) = f.from_ns {
        sql.int(" AND time >= fromUnixTimestamp64Nano(?, 'UTC')", from);
    }
    if let Some(to) = f.to_ns {
        sql.int(" AND time < fromUnixTimestamp64Nano(?, 'UTC')", to);
    }
    for (column, value) in [
        ("service", &f.service),
        ("model", &f.model),
        ("provider", &f.provider),
        ("kind", &q.kind),
    ] {
        if let Some(v) = value {
            sql.str(&format!(" AND {column} = ?"), v);
        }
    }
    sql.int(" ORDER BY time DESC LIMIT ?", q.limit as i64);
    let rows: Vec<AnomalySelect> = sql.query(store).fetch_all().await.map_err(classify)?;
    let finite = |v: f64| v.is_finite().then_some(v);
    Ok(rows
        .into_iter()
        .map(|r| AnomalyRow {
            project: r.project,
            time_ns: r.time_ns,
            kind: r.kind,
            service: none_if_empty(r.service),
            provider: none_if_empty(r.provider),
            model: none_if_empty(r.model),
            operation: none_if_empty(r.operation),
            score: finite(r.score),
            value: finite(r.value),
            baseline: finite(r.baseline),
            trace_id: none_if_empty(r.trace_id),
            span_id: none_if_empty(r.span_id),
            message: none_if_empty(r.message),
            attributes: J::Object(json_map(r.attribute_keys, r.attribute_values)).to_string(),
        })
        .collect())
}
