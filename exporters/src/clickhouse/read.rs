//! The query API's reads over the ClickHouse tables: `trace_starts` and `trace_index` for the
//! trace list, raw rows for drill-downs, the rollups (`calls_hourly`/`calls_daily`, and
//! `people_calls` with `orphan_calls` for users and sessions) for the whole hours, days and
//! weeks of a summary and raw rows for its edges (`query::rollup::plan`).

use std::collections::HashMap;
use std::sync::Arc;

use clickhouse::Row;
use llmscope_core::semconv::GenAiFields;
use serde::Deserialize;
use serde_json::Value as J;

use super::{ClickHouseError, ClickHouseStore, classify};
use crate::query::{
    AnomalyQuery, CallRow, Filter, GroupBy, SummaryGroup, SummaryQuery, TracePage, TraceQuery,
    TraceSummary, rollup, summarize, trace_list,
};
use crate::record::{AnomalyRow, JsonMap, SpanRecord};

type Result<T> = std::result::Result<T, ClickHouseError>;

/// SQL text and its bound values, in order (`?` placeholders).
#[derive(Default)]
pub(super) struct Sql {
    text: String,
    binds: Vec<Bind>,
}

enum Bind {
    Str(String),
    Int(i64),
}

impl Sql {
    pub(super) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    pub(super) fn str(&mut self, text: &str, value: &str) -> &mut Self {
        self.text.push_str(text);
        self.binds.push(Bind::Str(value.to_owned()));
        self
    }

    pub(super) fn int(&mut self, text: &str, value: i64) -> &mut Self {
        self.text.push_str(text);
        self.binds.push(Bind::Int(value));
        self
    }

    pub(super) fn query(&self, store: &ClickHouseStore) -> clickhouse::query::Query {
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
    key_filter(sql, f);
}

/// `AND ...` clauses for the filter's service, model and provider, on the columns of alias `s`
/// (spans, or the call rollups, which have the same names).
fn key_filter(sql: &mut Sql, f: &Filter) {
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

pub(super) fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// Candidate rows read from `trace_starts` by the first attempt at a page (at least four per
/// trace of the page, sixteen times more with a filter); eightfold each retry.
const FIRST_CANDIDATES: usize = 256;

/// The first attempt reads the hour before the page's upper bound (the cursor, `to`, or the
/// newest row of any project): its parts only, where an unbounded read in start order opens
/// every part of `trace_starts`. Eightfold each retry, then unbounded.
const FIRST_WINDOW_SECONDS: i64 = 3600;
const LAST_WINDOW_SECONDS: i64 = 512 * 3600;

/// One page of the trace list, newest first, in two steps.
///
/// 1. The newest `n` rows of `trace_starts` (ordered by start) in a window below the page's
///    upper bound (`to` or the cursor) name the candidates; a trace's start is the least over
///    its rows in `trace_index`. Every trace starting after the oldest candidate row has its
///    earliest row among the candidates; when fewer than `n` rows were in the window, so has
///    every trace starting in the window. Those traces are exactly the ones starting there.
///    When they fill a page, or nothing is left out, that is the page; else the window grows
///    (fewer than `n` rows) or `n` does.
/// 2. The page's spans (bounded by time, which the primary key orders, and by trace id, which
///    the bloom filter skips) give every trace's totals in one query.
pub async fn traces(store: &ClickHouseStore, q: &TraceQuery) -> Result<TracePage> {
    let filtered = !trace_list::list_keys(q).is_empty();
    let mut n = FIRST_CANDIDATES.max(4 * (q.limit + 1)) * if filtered { 16 } else { 1 };
    let mut window = Some(FIRST_WINDOW_SECONDS);
    let rows = loop {
        let page = Window::new(q, window);
        let rows: Vec<TraceStart> = page_sql(store.database(), q, n, page)
            .query(store)
            .fetch_all()
            .await
            .map_err(classify)?;
        if rows.len() > q.limit || n >= 1 << 40 {
            break rows;
        }
        // Fewer than `n` rows: all of the window's were read.
        let short = match rows.first() {
            Some(r) => r.short != 0,
            None => !has_more_than(store, q, n, page).await?,
        };
        match (short, page.seconds) {
            (true, None) => break rows,
            (true, Some(seconds)) => {
                window = (seconds < LAST_WINDOW_SECONDS).then_some(seconds * 8);
            }
            (false, _) => n *= 8,
        }
    };
    let mut page = TracePage::paginate(
        rows.into_iter()
            .map(|t| TraceSummary {
                trace_id: t.trace_id,
                start_ns: t.start_ns,
                ..TraceSummary::default()
            })
            .collect(),
        q.limit,
    );
    if !page.traces.is_empty() {
        fill_traces(store, &q.filter.project, &mut page.traces).await?;
    }
    Ok(page)
}

/// The rows of `trace_starts` one attempt reads: below `hi` (the cursor or `to`; without
/// either, the newest row's start), from `seconds` before it; `None` for no lower bound but
/// `from`.
#[derive(Clone, Copy)]
struct Window {
    hi: Option<i64>,
    seconds: Option<i64>,
}

impl Window {
    fn new(q: &TraceQuery, seconds: Option<i64>) -> Self {
        let f = &q.filter;
        let hi = match (f.to_ns, q.cursor.as_ref().map(|c| c.start_ns + 1)) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        };
        // A window reaching back past `from` is no window.
        let seconds = seconds.filter(|s| match (hi, f.from_ns) {
            (Some(hi), Some(from)) => hi.saturating_sub(s.saturating_mul(1_000_000_000)) > from,
            _ => true,
        });
        Self { hi, seconds }
    }
}

/// `SELECT trace_id, start FROM trace_starts`: the newest `n` rows of the window.
fn candidates_sql(sql: &mut Sql, db: &str, q: &TraceQuery, n: usize, window: Window) {
    let f = &q.filter;
    sql.push(&format!(
        "SELECT trace_id, start FROM {db}.trace_starts WHERE"
    ))
    .str(" project = ?", &f.project);
    if let Some(from) = f.from_ns {
        sql.int(" AND start >= fromUnixTimestamp64Nano(?, 'UTC')", from);
    }
    if let Some(hi) = window.hi {
        sql.int(" AND start < fromUnixTimestamp64Nano(?, 'UTC')", hi);
    }
    if window.seconds.is_some() {
        sql.push(" AND start >= ");
        window_floor(sql, db, window);
    }
    sql.int(" ORDER BY start DESC LIMIT ?", n as i64);
}

/// The window's lower bound (a `DateTime64`): `seconds` below `hi`, or below the newest start
/// of any project (the parts' min-max index answers it). Nothing when it has no bound.
fn window_floor(sql: &mut Sql, db: &str, window: Window) {
    let Some(seconds) = window.seconds else {
        return;
    };
    match window.hi {
        Some(hi) => sql.int("fromUnixTimestamp64Nano(?, 'UTC')", hi),
        None => sql.push(&format!("(SELECT max(start) FROM {db}.trace_starts)")),
    };
    sql.int(" - toIntervalSecond(?)", seconds);
}

/// Whether the window holds more than `n` candidate rows.
async fn has_more_than(
    store: &ClickHouseStore,
    q: &TraceQuery,
    n: usize,
    window: Window,
) -> Result<bool> {
    let mut sql = Sql::default();
    sql.push("SELECT count() FROM (");
    candidates_sql(&mut sql, store.database(), q, n + 1, window);
    sql.push(")");
    let count = sql
        .query(store)
        .fetch_one::<u64>()
        .await
        .map_err(classify)?;
    Ok(count > n as u64)
}

/// The page's trace ids and starts from `n` candidate rows, newest first, each row with
/// `short` set when the window held fewer rows than that (every one of them was read). The
/// candidates are read once, as a constant (`c`: their ids, oldest start, count).
fn page_sql(db: &str, q: &TraceQuery, n: usize, window: Window) -> Sql {
    let f = &q.filter;
    let mut sql = Sql::default();
    sql.push("WITH (SELECT (groupArray(trace_id), min(start), count()) FROM (");
    candidates_sql(&mut sql, db, q, n, window);
    sql.push(&format!(
        ")) AS c, c.2 AS oldest, ifNull(c.3 < {n}, 1) AS all_read
         SELECT trace_id, toUnixTimestamp64Nano(min(start_min)) AS start_ns,
                toUInt8(all_read) AS short
         FROM {db}.trace_index WHERE"
    ))
    .str(" project = ?", &f.project)
    .push(" AND has(c.1, trace_id)");
    // As `query::trace_list` defines the list: a span of each filter key (any span, one per
    // key); the trace's own start decides below, and its spans start no earlier.
    let error = q.errors_only.then(String::new);
    let keys = [
        ("service = ?", f.service.as_ref()),
        (
            "(request_model = ? OR response_model = ?)",
            f.model.as_ref(),
        ),
        ("provider = ?", f.provider.as_ref()),
        ("user_id = ?", q.user.as_ref()),
        ("session_id = ?", q.session.as_ref()),
        ("status_code = 2", error.as_ref()),
    ];
    for (condition, value) in keys {
        let Some(value) = value else { continue };
        sql.push(&format!(
            " AND trace_id IN (SELECT trace_id FROM {db}.spans WHERE"
        ))
        .str(" project = ?", &f.project)
        .push(" AND start_time >= oldest AND ");
        for (i, part) in condition.split('?').enumerate() {
            if i > 0 {
                sql.str("?", value);
            }
            sql.push(part);
        }
        sql.push(")");
    }
    // Words of the root's name (the root as the list defines it), split as
    // `trace_list::name_words` splits names.
    if !q.words.is_empty() {
        sql.push(&format!(
            " AND trace_id IN (SELECT trace_id FROM {db}.spans WHERE"
        ))
        .str(" project = ?", &f.project)
        .push(
            " AND start_time >= oldest GROUP BY trace_id HAVING hasAll(arraySlice(extractAll(
                lower(argMin(name, (parent_span_id != '', start_time, span_id))), '[a-z0-9]+'),
                1, 8), [",
        );
        for (i, word) in q.words.iter().enumerate() {
            sql.str(if i == 0 { "?" } else { ", ?" }, word);
        }
        sql.push("]))");
    }
    // A trace starting at the oldest candidate row may have its earliest row among the rows
    // left out (a tie), unless there were none; one starting before the window is not known to
    // have its earliest row read.
    sql.push(" GROUP BY trace_id HAVING (start_ns > toUnixTimestamp64Nano(oldest) OR all_read)");
    if window.seconds.is_some() {
        sql.push(" AND start_ns >= toUnixTimestamp64Nano(");
        window_floor(&mut sql, db, window);
        sql.push(")");
    }
    if let Some(from) = f.from_ns {
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
    short: u8,
}

#[derive(Row, Deserialize)]
struct TraceRow {
    trace_id: String,
    end_ns: i64,
    span_count: u64,
    error: u8,
    root_name: String,
    service: String,
    calls: u64,
    input_tokens: i64,
    output_tokens: i64,
    cost_usd: f64,
    priced: u64,
}

/// The totals of the page's traces from their spans in one query, each model call counted once
/// (of the spans sharing a response id, the largest usage). Traces whose spans are gone
/// (retention ran meanwhile) leave the page.
async fn fill_traces(
    store: &ClickHouseStore,
    project: &str,
    traces: &mut Vec<TraceSummary>,
) -> Result<()> {
    let db = store.database();
    // Every span of a trace starts at or after the trace.
    let oldest = traces.iter().map(|t| t.start_ns).min().unwrap_or(i64::MIN);
    let ids: Vec<String> = traces.iter().map(|t| t.trace_id.clone()).collect();
    let mut sql = Sql::default();
    sql.push(&format!(
        "SELECT trace_id, end_ns, span_count, error, root_name, service, length(it.1) AS calls,
                arraySum(it.2) AS input_tokens, arraySum(ot.2) AS output_tokens,
                arraySum(c.2) AS cost_usd, arraySum(p.2) AS priced
         FROM (
         SELECT trace_id, toUnixTimestamp64Nano(max(end_time)) AS end_ns, count() AS span_count,
                toUInt8(max(status_code = 2)) AS error,
                argMin(name, (parent_span_id != '', start_time, span_id)) AS root_name,
                argMin(service, (parent_span_id != '', start_time, span_id)) AS service,
                maxMapIf(([call], [ifNull(input_tokens, 0)]), is_model_call = 1) AS it,
                maxMapIf(([call], [ifNull(output_tokens, 0)]), is_model_call = 1) AS ot,
                maxMapIf(([call], [ifNull(cost_usd, 0)]), is_model_call = 1) AS c,
                maxMapIf(([call], [toUInt8(cost_usd IS NOT NULL)]), is_model_call = 1) AS p
         FROM (SELECT trace_id, end_time, status_code, name, parent_span_id, start_time, span_id,
                      service, is_model_call, input_tokens, output_tokens, cost_usd,
                      if(response_id != '', response_id, span_id) AS call
               FROM {db}.spans WHERE"
    ))
    .str(" project = ?", project)
    .int(
        " AND start_time >= fromUnixTimestamp64Nano(?, 'UTC')",
        oldest,
    )
    .push(" AND trace_id IN");
    ids_list(&mut sql, &ids);
    sql.push(") GROUP BY trace_id)");
    let rows: Vec<TraceRow> = sql.query(store).fetch_all().await.map_err(classify)?;
    let mut of: HashMap<String, TraceRow> =
        rows.into_iter().map(|r| (r.trace_id.clone(), r)).collect();
    traces.retain_mut(|t| {
        let Some(r) = of.remove(&t.trace_id) else {
            return false;
        };
        t.service = none_if_empty(r.service);
        t.root_name = Some(r.root_name);
        t.duration_ns = (r.end_ns - t.start_ns).max(0);
        t.span_count = r.span_count as i64;
        t.error = r.error != 0;
        t.llm_calls = r.calls as i64;
        t.input_tokens = r.input_tokens;
        t.output_tokens = r.output_tokens;
        t.cost_usd = (r.priced > 0).then_some(r.cost_usd);
        true
    });
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

#[derive(Row, Deserialize)]
struct ContentRow {
    span_id: String,
    input_messages: String,
    output_messages: String,
    system_instructions: String,
}

/// A `Map` column read as keys and JSON-text values, back to JSON values.
pub(super) fn json_map(keys: Vec<String>, values: Vec<String>) -> JsonMap {
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

pub async fn trace(
    store: &ClickHouseStore,
    project: &str,
    trace_id: &str,
) -> Result<Option<Vec<SpanRecord>>> {
    let db = store.database();
    // The trace's time range from the lookup table (a scalar subquery, so the primary key and
    // partitions of `spans` use it) narrows the scan; the event content is read meanwhile.
    let spans = store
        .client()
        .query(&format!(
            "WITH (SELECT (min(start_min), max(start_max)) FROM {db}.trace_index
                   WHERE project = ? AND trace_id = ?) AS range
             SELECT project, trace_id, span_id, parent_span_id, name, kind, service, scope_name,
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
               AND start_time >= range.1 AND start_time <= range.2
             ORDER BY start_time, span_id
             LIMIT 1 BY span_id"
        ))
        .bind(project)
        .bind(trace_id)
        .bind(project)
        .bind(trace_id)
        .fetch_all::<SpanRow>();
    let content = store
        .client()
        .query(&format!(
            "SELECT span_id, input_messages, output_messages, system_instructions FROM {db}.logs
             WHERE project = ? AND trace_id = ? AND span_id != ''
               AND (input_messages != '' OR output_messages != '' OR system_instructions != '')
             ORDER BY time"
        ))
        .bind(project)
        .bind(trace_id)
        .fetch_all::<ContentRow>();
    let (rows, content) = tokio::try_join!(spans, content).map_err(classify)?;
    let mut spans: Vec<SpanRecord> = rows.into_iter().map(SpanRecord::from).collect();
    if spans.is_empty() {
        return Ok(None);
    }
    let content = content.into_iter().map(|c| {
        (
            c.span_id,
            [
                none_if_empty(c.input_messages),
                none_if_empty(c.output_messages),
                none_if_empty(c.system_instructions),
            ],
        )
    });
    crate::query::join_event_content(&mut spans, content);
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

/// The group key over spans or call rollups `s` (and, for user and session, over spans `s` and
/// their traces `t`: the trace's value when the span has none, as instrumentations set them on
/// the root).
pub(super) fn group_key(group_by: GroupBy) -> &'static str {
    match group_by {
        GroupBy::Model => "if(s.request_model != '', s.request_model, s.response_model)",
        GroupBy::Provider => "s.provider",
        GroupBy::Service => "s.service",
        GroupBy::Operation => "s.operation",
        GroupBy::User => "if(s.user_id != '', s.user_id, t.trace_user)",
        GroupBy::Session => "if(s.session_id != '', s.session_id, t.trace_session)",
    }
}

/// Whole hours, days (and, for users and sessions, weeks) from the rollups and the partial
/// hours at the edges from raw rows (`query::rollup::plan`), in one query; ranges without a whole
/// hour from raw rows alone.
pub async fn summary(store: &ClickHouseStore, q: &SummaryQuery) -> Result<Vec<SummaryGroup>> {
    match rollup::plan(q) {
        Some(plan) => summary_from_plan(store, q, &plan).await,
        None => summary_from_rows(store, q).await,
    }
}

async fn summary_from_rows(store: &ClickHouseStore, q: &SummaryQuery) -> Result<Vec<SummaryGroup>> {
    let mut sql = Sql::default();
    raw_calls(&mut sql, store.database(), q.group_by, &q.filter, &[]);
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

/// Model calls in `f` (and, when given, in one of `ranges` of start times), keyed by `group_by`:
/// one row per call, of spans sharing a response id the one with the most complete usage (the
/// same choice as every store).
fn raw_calls(sql: &mut Sql, db: &str, group_by: GroupBy, f: &Filter, ranges: &[(i64, i64)]) {
    sql.push(&format!(
        "SELECT {key} AS key, toUnixTimestamp64Nano(s.start_time) AS start_ns, s.duration_ns AS duration_ns,
                s.status_code AS status_code, s.input_tokens AS input_tokens, s.output_tokens AS output_tokens,
                s.cache_read_tokens AS cache_read_tokens, s.cost_usd AS cost_usd",
        key = group_key(group_by)
    ));
    calls_from(
        sql,
        db,
        group_by,
        &Calls {
            f,
            ranges,
            scored: None,
        },
    );
    sql.push(
        " ORDER BY isNull(s.input_tokens), isNull(s.cost_usd), s.start_time, s.span_id, s.trace_id
          LIMIT 1 BY if(s.response_id != '', s.response_id, concat(s.trace_id, s.span_id))",
    );
}

/// Which model-call spans: in `f`, in one of `ranges` when given, in a trace with a score of
/// the given name (`query::scores_query`) when given.
pub(super) struct Calls<'a> {
    pub f: &'a Filter,
    pub ranges: &'a [(i64, i64)],
    pub scored: Option<&'a crate::query::EventQuery>,
}

/// `FROM spans AS s` (with the traces' user and session as `t` when grouped by them) and the
/// `WHERE` clause of `calls`.
pub(super) fn calls_from(sql: &mut Sql, db: &str, group_by: GroupBy, calls: &Calls<'_>) {
    sql.push(&format!(" FROM {db}.spans AS s"));
    let f = calls.f;
    if matches!(group_by, GroupBy::User | GroupBy::Session) {
        // The calls' traces' user and session (`trace_people`, by primary key).
        sql.push(&format!(
            " LEFT JOIN (SELECT trace_id, tupleElement(min(user_pick), 4) AS trace_user,
                                tupleElement(min(session_pick), 4) AS trace_session
                         FROM {db}.trace_people WHERE"
        ));
        sql.str(" project = ?", &f.project).push(&format!(
            " AND trace_id IN (SELECT s.trace_id FROM {db}.spans AS s WHERE"
        ));
        calls_where(sql, db, calls);
        sql.push(") GROUP BY trace_id) AS t ON t.trace_id = s.trace_id");
    }
    sql.push(" WHERE");
    calls_where(sql, db, calls);
}

/// The conditions on spans `s` of `calls`.
fn calls_where(sql: &mut Sql, db: &str, calls: &Calls<'_>) {
    sql.push(" s.is_model_call = 1 AND");
    span_filter(sql, calls.f);
    ranges_where(sql, calls.ranges);
    if let Some(scores) = calls.scored {
        sql.push(&format!(
            " AND s.trace_id IN (SELECT trace_id FROM {db}.logs AS l WHERE"
        ));
        super::events::events_where(sql, scores);
        sql.push(")");
    }
}

#[derive(Row, Deserialize)]
struct GroupRow {
    key: String,
    bucket_ns: i64,
    requests: u64,
    errors: u64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cost_usd: f64,
    priced: u64,
    hist_buckets: Vec<u8>,
    hist_counts: Vec<u64>,
}

/// The sums of one group and bucket over rollup rows and raw calls (each call as a row of one),
/// the latency as the rollups' histogram: `calls_hourly`/`calls_daily` for model, provider,
/// service and operation; for users and sessions `people_calls` (or, filtered by service,
/// provider or model, the spans of the calls that carry their own) and `orphan_calls` by their
/// traces' user or session; raw calls at the edges.
async fn summary_from_plan(
    store: &ClickHouseStore,
    q: &SummaryQuery,
    plan: &rollup::Plan,
) -> Result<Vec<SummaryGroup>> {
    let db = store.database();
    let f = &q.filter;
    let mut sql = Sql::default();
    sql.push(
        "SELECT key, bucket_ns, sum(requests) AS requests, sum(errors) AS errors,
                sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                sum(cache_read_tokens) AS cache_read_tokens, sum(cost_usd) AS cost_usd,
                sum(priced) AS priced, mapKeys(sumMap(latency_hist)) AS hist_buckets,
                mapValues(sumMap(latency_hist)) AS hist_counts
         FROM (",
    );
    let whole: Vec<(i64, i64)> = plan.rollup.iter().map(|(_, a, b)| (*a, *b)).collect();
    match rollup::Dim::for_group(q.group_by) {
        rollup::Dim::Calls => calls_rollups(&mut sql, db, q, plan),
        dim if rollup::sums_parts(q) => {
            // A filter on the calls' series, which `people_calls` does not keep: the calls with
            // their own user or session, as the rollups would count them.
            sql.push(&format!(
                "SELECT s.{column} AS key, {bucket} AS bucket_ns, {ONE_CALL}
                 FROM {db}.spans AS s WHERE s.counted = 1 AND s.{column} != '' AND",
                column = own_column(dim),
                bucket = bucket_of(q, "toUnixTimestamp64Nano(s.start_time)"),
            ))
            .str(" s.project = ?", &f.project);
            ranges_where(&mut sql, &whole);
            key_filter(&mut sql, f);
        }
        dim => people_rollups(&mut sql, db, q, dim, plan),
    }
    if rollup::Dim::for_group(q.group_by) != rollup::Dim::Calls {
        sql.push(" UNION ALL ");
        orphans(&mut sql, db, q, &whole);
    }
    if !plan.raw.is_empty() {
        // The edges' calls, one row per call as `summary_from_rows` picks them.
        sql.push(&format!(
            " UNION ALL SELECT s.key AS key, {bucket} AS bucket_ns, {ONE_CALL} FROM (",
            bucket = bucket_of(q, "s.start_ns"),
        ));
        let edges = Filter {
            from_ns: None,
            to_ns: None,
            ..f.clone()
        };
        raw_calls(&mut sql, db, q.group_by, &edges, &plan.raw);
        sql.push(") AS s");
    }
    sql.push(") GROUP BY key, bucket_ns");
    let rows: Vec<GroupRow> = sql.query(store).fetch_all().await.map_err(classify)?;
    let mut combined = rollup::Combined::new(q);
    for r in rows {
        let sums = rollup::Sums {
            requests: r.requests as i64,
            errors: r.errors as i64,
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            cache_read_tokens: r.cache_read_tokens,
            cost_usd: r.cost_usd,
            priced: r.priced as i64,
            hist: rollup::Hist::from_counts(
                r.hist_buckets
                    .into_iter()
                    .zip(r.hist_counts.into_iter().map(|n| n as i64)),
            ),
            parts: rollup::Parts::default(),
        };
        combined.add_group(&r.key, r.bucket_ns, &sums);
    }
    Ok(combined.finish())
}

/// The sums' columns of one call of `s` (spans, raw calls or `orphan_calls`) as a rollup row of
/// one, the latency in `query::rollup::Hist`'s bucket as the rollups' views compute it.
const ONE_CALL: &str = "toUInt64(1) AS requests, toUInt64(s.status_code = 2) AS errors,
    ifNull(s.input_tokens, 0) AS input_tokens, ifNull(s.output_tokens, 0) AS output_tokens,
    ifNull(s.cache_read_tokens, 0) AS cache_read_tokens, ifNull(s.cost_usd, 0) AS cost_usd,
    toUInt64(s.cost_usd IS NOT NULL) AS priced,
    map(if(s.duration_ns <= 1000000, 0,
           toUInt8(least(ceil(log(s.duration_ns / 1e6) / log(1.1)), 199))),
        toUInt64(1)) AS latency_hist";

/// The start of the summary bucket of `time_ns` (an expression in nanoseconds), or 0.
fn bucket_of(q: &SummaryQuery, time_ns: &str) -> String {
    match q.bucket_ns {
        Some(b) if b > 0 => format!("intDiv({time_ns}, {b}) * {b}"),
        _ => "toInt64(0)".to_owned(),
    }
}

/// The columns of a rollup row of `s` (`calls_hourly`, `calls_daily`, `people_calls`) as the
/// summary's union has them.
const ROLLUP_SUMS: &str = "toUInt64(s.requests) AS requests, toUInt64(s.errors) AS errors,
    toInt64(s.input_tokens) AS input_tokens, toInt64(s.output_tokens) AS output_tokens,
    toInt64(s.cache_read_tokens) AS cache_read_tokens, toFloat64(s.cost_usd) AS cost_usd,
    toUInt64(s.priced) AS priced, CAST(s.latency_hist, 'Map(UInt8, UInt64)') AS latency_hist";

/// The bucket start of a rollup row of `s`, in nanoseconds, as the summary's bucket.
fn rollup_bucket(q: &SummaryQuery) -> String {
    bucket_of(q, "toInt64(toUnixTimestamp(s.bucket)) * 1000000000")
}

/// `AND s.bucket` in `[from, to)`, given in nanoseconds.
fn bucket_range(sql: &mut Sql, from: i64, to: i64) {
    sql.int(
        " AND s.bucket >= toDateTime(intDiv(?, 1000000000), 'UTC')",
        from,
    )
    .int(
        " AND s.bucket < toDateTime(intDiv(?, 1000000000), 'UTC')",
        to,
    );
}

/// The plan's rows of `calls_hourly` and `calls_daily`, for a model, provider, service or
/// operation summary with any filter.
fn calls_rollups(sql: &mut Sql, db: &str, q: &SummaryQuery, plan: &rollup::Plan) {
    for (i, (width, from, to)) in plan.rollup.iter().enumerate() {
        let table = if *width == rollup::DAY_NS {
            "calls_daily"
        } else {
            "calls_hourly"
        };
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push(&format!(
            "SELECT toString({key}) AS key, {bucket} AS bucket_ns, {ROLLUP_SUMS}
             FROM {db}.{table} AS s WHERE",
            key = group_key(q.group_by),
            bucket = rollup_bucket(q),
        ))
        .str(" s.project = ?", &q.filter.project);
        bucket_range(sql, *from, *to);
        key_filter(sql, &q.filter);
    }
}

/// The plan's rows of `people_calls` (hourly, daily and weekly) of `dim`, for an unfiltered
/// user or session summary.
fn people_rollups(
    sql: &mut Sql,
    db: &str,
    q: &SummaryQuery,
    dim: rollup::Dim,
    plan: &rollup::Plan,
) {
    for (i, (width, from, to)) in plan.rollup.iter().enumerate() {
        if i > 0 {
            sql.push(" UNION ALL ");
        }
        sql.push(&format!(
            "SELECT s.key AS key, {bucket} AS bucket_ns, {ROLLUP_SUMS}
             FROM {db}.people_calls AS s WHERE",
            bucket = rollup_bucket(q),
        ))
        .str(" s.project = ?", &q.filter.project)
        .str(" AND s.kind = ?", people_kind(dim))
        .int(" AND s.width = ?", width / 1_000_000_000);
        bucket_range(sql, *from, *to);
    }
}

/// `people_calls.kind` of a user or session summary.
fn people_kind(dim: rollup::Dim) -> &'static str {
    if dim == rollup::Dim::User {
        "user"
    } else {
        "session"
    }
}

/// The spans' (and `orphan_calls`') column of a call's own user or session.
fn own_column(dim: rollup::Dim) -> &'static str {
    if dim == rollup::Dim::User {
        "user_id"
    } else {
        "session_id"
    }
}

/// `AND (...)`: `s.start_time` in one of `ranges` (nanoseconds), when any are given.
fn ranges_where(sql: &mut Sql, ranges: &[(i64, i64)]) {
    for (i, (from, to)) in ranges.iter().enumerate() {
        sql.push(if i == 0 { " AND (" } else { " OR " })
            .int("(s.start_time >= fromUnixTimestamp64Nano(?, 'UTC')", *from)
            .int(
                " AND s.start_time < fromUnixTimestamp64Nano(?, 'UTC'))",
                *to,
            );
    }
    if !ranges.is_empty() {
        sql.push(")");
    }
}

/// The calls in `ranges` without their own user (or session) for a user (or session) summary,
/// each as a row of one, keyed by its trace's (`trace_people`, looked up for their traces
/// only).
fn orphans(sql: &mut Sql, db: &str, q: &SummaryQuery, ranges: &[(i64, i64)]) {
    let dim = rollup::Dim::for_group(q.group_by);
    let column = own_column(dim);
    let which = |sql: &mut Sql| {
        sql.str(" s.project = ?", &q.filter.project)
            .push(&format!(" AND s.{column} = ''"));
        ranges_where(sql, ranges);
        key_filter(sql, &q.filter);
    };
    sql.push(&format!(
        "SELECT t.pick AS key, {bucket} AS bucket_ns, {ONE_CALL}
         FROM {db}.orphan_calls AS s
         LEFT JOIN (SELECT trace_id, tupleElement(min({kind}_pick), 4) AS pick
                    FROM {db}.trace_people WHERE",
        bucket = bucket_of(q, "toUnixTimestamp64Nano(s.start_time)"),
        kind = people_kind(dim),
    ))
    .str(" project = ?", &q.filter.project)
    .push(&format!(
        " AND trace_id IN (SELECT s.trace_id FROM {db}.orphan_calls AS s WHERE"
    ));
    which(sql);
    sql.push(") GROUP BY trace_id) AS t ON t.trace_id = s.trace_id WHERE");
    which(sql);
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
