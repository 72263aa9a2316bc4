//! The write path: binary `COPY` into per-connection staging tables, deduplicating inserts, and
//! rollup increments from the rows actually inserted, in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::pin;

use llmscope_core::{Batch, Payload};
use serde_json::Value as J;
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::partitions::{self, DAY_NS};
use super::{PostgresError, PostgresStore, pool_error};
use crate::query::Latency;
use crate::query::trace_list::{BRIEF_COLUMNS, SpanBrief, summarize_trace};
use crate::record::{self, AnomalyRow, LogRow, MetricPointRow, SpanRecord};

/// Latency histogram buckets: bucket `i` covers `(1.1^(i-1), 1.1^i]` ms, bucket 0 up to 1 ms.
pub const HIST_BUCKETS: usize = 200;
const HIST_BASE: f64 = 1.1;

pub fn hist_index(ms: f64) -> usize {
    if ms <= 1.0 {
        return 0;
    }
    ((ms.ln() / HIST_BASE.ln()).ceil() as usize).min(HIST_BUCKETS - 1)
}

/// Nearest-rank quantiles from a histogram, each the upper bound of its bucket (within 10%).
pub fn hist_latency(hist: &[i64]) -> Latency {
    let total: i64 = hist.iter().sum();
    let at = |q: f64| {
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return HIST_BASE.powi(i as i32);
            }
        }
        HIST_BASE.powi(hist.len() as i32)
    };
    Latency {
        p50_ms: at(0.50),
        p95_ms: at(0.95),
        p99_ms: at(0.99),
    }
}

const STAGES: &str = "
    CREATE TEMP TABLE IF NOT EXISTS spans_stage (LIKE spans) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS logs_stage (LIKE logs) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS anomalies_stage (LIKE anomalies) ON COMMIT DELETE ROWS;";

pub async fn batch(store: &PostgresStore, batch: &Batch) -> Result<(), PostgresError> {
    let project = &batch.ctx.project;
    let spans = match &batch.payload {
        Payload::Traces(rs) => record::span_records(project, rs),
        _ => Vec::new(),
    };
    let (mut logs, mut anomalies) = record::log_rows(project, &batch.events);
    if let Payload::Logs(rl) = &batch.payload {
        let (l, a) = record::log_rows(project, rl);
        logs.extend(l);
        anomalies.extend(a);
    }
    let metrics = match &batch.payload {
        Payload::Metrics(rm) => record::metric_rows(project, rm),
        _ => Vec::new(),
    };
    for day in spans
        .iter()
        .map(|s| s.start_time_ns.div_euclid(DAY_NS))
        .collect::<BTreeSet<_>>()
    {
        partitions::ensure(store.pool(), &store.known, "spans", day).await?;
    }
    for day in logs
        .iter()
        .map(|l| l.time_ns.div_euclid(DAY_NS))
        .collect::<BTreeSet<_>>()
    {
        partitions::ensure(store.pool(), &store.known, "logs", day).await?;
    }

    let mut client = store.pool().get().await.map_err(pool_error)?;
    client.batch_execute(STAGES).await?;
    let tx = client.transaction().await?;
    if !spans.is_empty() {
        copy_spans(&tx, &spans).await?;
        let inserted = tx
            .query(
                "INSERT INTO spans SELECT * FROM spans_stage ON CONFLICT DO NOTHING
                 RETURNING project, start_time_ns, duration_ns, coalesce(service, ''),
                           coalesce(provider, ''), coalesce(request_model, response_model, ''),
                           coalesce(operation, ''), status_code, input_tokens, output_tokens,
                           cache_read_tokens, cost_usd, counted",
                &[],
            )
            .await?;
        add_to_rollups(&tx, &inserted).await?;
        let touched: BTreeSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
        refresh_traces(&tx, project, &touched.into_iter().collect::<Vec<_>>()).await?;
    }
    if !logs.is_empty() {
        copy_logs(&tx, &logs).await?;
        tx.execute(
            "INSERT INTO logs SELECT * FROM logs_stage ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    }
    if !anomalies.is_empty() {
        copy_anomalies(&tx, &anomalies).await?;
        tx.execute(
            "INSERT INTO anomalies SELECT * FROM anomalies_stage ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
    }
    if !metrics.is_empty() {
        copy_metrics(&tx, &metrics).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn json(text: &str) -> J {
    serde_json::from_str(text).unwrap_or(J::Null)
}

async fn copy(
    tx: &Transaction<'_>,
    sql: &str,
    types: &[Type],
    rows: impl Iterator<Item = Vec<Box<dyn ToSql + Sync + Send>>>,
) -> Result<(), PostgresError> {
    let sink = tx.copy_in(sql).await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, types));
    for row in rows {
        let refs: Vec<&(dyn ToSql + Sync)> = row
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        writer.as_mut().write(&refs).await?;
    }
    writer.finish().await?;
    Ok(())
}

type Cell = Box<dyn ToSql + Sync + Send>;

fn b<T: ToSql + Sync + Send + 'static>(v: T) -> Cell {
    Box::new(v)
}

async fn copy_spans(tx: &Transaction<'_>, spans: &[SpanRecord]) -> Result<(), PostgresError> {
    use Type as T;
    let types = [
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::INT2,
        T::TEXT,
        T::TEXT,
        T::INT8,
        T::INT8,
        T::INT8,
        T::INT2,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::INT8,
        T::INT8,
        T::INT8,
        T::INT8,
        T::INT8,
        T::FLOAT8,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::BOOL,
        T::BOOL,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::JSONB,
        T::JSONB,
        T::JSONB,
        T::JSONB,
    ];
    let counted = record::counted_calls(spans);
    let rows = spans.iter().zip(counted).map(|(r, counted)| {
        let g = &r.gen_ai;
        vec![
            b(r.project.clone()),
            b(r.trace_id.clone()),
            b(r.span_id.clone()),
            b(r.parent_span_id.clone()),
            b(r.name.clone()),
            b(r.kind as i16),
            b(r.service.clone()),
            b(r.scope_name.clone()),
            b(r.start_time_ns),
            b(r.end_time_ns),
            b(r.duration_ns()),
            b(r.status_code as i16),
            b(r.status_message.clone()),
            b(g.operation.clone()),
            b(g.provider.clone()),
            b(g.request_model.clone()),
            b(g.response_model.clone()),
            b(g.response_id.clone()),
            b(g.input_tokens),
            b(g.output_tokens),
            b(g.cache_read_tokens),
            b(g.cache_write_tokens),
            b(g.reasoning_tokens),
            b(g.cost_usd),
            b(g.session_id.clone()),
            b(g.user_id.clone()),
            b(g.conversation_id.clone()),
            b(g.is_model_call),
            b(counted),
            b(g.input_messages.clone()),
            b(g.output_messages.clone()),
            b(g.system_instructions.clone()),
            b(J::Object(r.attributes.clone())),
            b(J::Object((*r.resource_attributes).clone())),
            b(json(&r.events)),
            b(json(&r.links)),
        ]
    });
    copy(
        tx,
        "COPY spans_stage FROM STDIN (FORMAT binary)",
        &types,
        rows,
    )
    .await
}

async fn copy_logs(tx: &Transaction<'_>, logs: &[LogRow]) -> Result<(), PostgresError> {
    use Type as T;
    let types = [
        T::TEXT,
        T::INT8,
        T::INT8,
        T::INT8,
        T::TEXT,
        T::TEXT,
        T::INT4,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::JSONB,
        T::JSONB,
        T::TEXT,
        T::TEXT,
        T::TEXT,
    ];
    let rows = logs.iter().map(|r| {
        let id = r.record_id();
        vec![
            b(r.project.clone()),
            b(id),
            b(r.time_ns),
            b(r.observed_time_ns),
            b(r.trace_id.clone()),
            b(r.span_id.clone()),
            b(r.severity_number),
            b(r.severity_text.clone()),
            b(r.event_name.clone()),
            b(r.service.clone()),
            b(r.scope_name.clone()),
            b(r.body.clone()),
            b(json(&r.attributes)),
            b(json(&r.resource_attributes)),
            b(r.input_messages.clone()),
            b(r.output_messages.clone()),
            b(r.system_instructions.clone()),
        ]
    });
    copy(
        tx,
        "COPY logs_stage FROM STDIN (FORMAT binary)",
        &types,
        rows,
    )
    .await
}

async fn copy_anomalies(tx: &Transaction<'_>, rows: &[AnomalyRow]) -> Result<(), PostgresError> {
    use Type as T;
    let types = [
        T::TEXT,
        T::INT8,
        T::INT8,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::FLOAT8,
        T::FLOAT8,
        T::FLOAT8,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::JSONB,
    ];
    let rows = rows.iter().map(|r| {
        let id = r.record_id();
        vec![
            b(r.project.clone()),
            b(id),
            b(r.time_ns),
            b(r.kind.clone()),
            b(r.service.clone()),
            b(r.provider.clone()),
            b(r.model.clone()),
            b(r.operation.clone()),
            b(r.score),
            b(r.value),
            b(r.baseline),
            b(r.trace_id.clone()),
            b(r.span_id.clone()),
            b(r.message.clone()),
            b(json(&r.attributes)),
        ]
    });
    copy(
        tx,
        "COPY anomalies_stage FROM STDIN (FORMAT binary)",
        &types,
        rows,
    )
    .await
}

async fn copy_metrics(tx: &Transaction<'_>, rows: &[MetricPointRow]) -> Result<(), PostgresError> {
    use Type as T;
    let types = [
        T::TEXT,
        T::INT8,
        T::INT8,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::TEXT,
        T::FLOAT8,
        T::INT8,
        T::JSONB,
        T::JSONB,
    ];
    let rows = rows.iter().map(|r| {
        vec![
            b(r.project.clone()),
            b(r.time_ns),
            b(r.start_time_ns),
            b(r.service.clone()),
            b(r.scope_name.clone()),
            b(r.name.clone()),
            b(r.unit.clone()),
            b(r.kind.to_owned()),
            b(r.value),
            b(r.count),
            b(json(&r.attributes)),
            b(json(&r.resource_attributes)),
        ]
    });
    copy(
        tx,
        "COPY metric_points FROM STDIN (FORMAT binary)",
        &types,
        rows,
    )
    .await
}

#[derive(Default)]
struct Increment {
    requests: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cost_usd: f64,
    priced: i64,
    hist: Vec<i64>,
}

/// Adds the counted calls among the inserted rows to the hourly and daily rollups.
async fn add_to_rollups(
    tx: &Transaction<'_>,
    inserted: &[tokio_postgres::Row],
) -> Result<(), PostgresError> {
    type Key = (String, i32, i64, String, String, String, String);
    let mut groups: BTreeMap<Key, Increment> = BTreeMap::new();
    for r in inserted.iter().filter(|r| r.get::<_, bool>(12)) {
        let start: i64 = r.get(1);
        let duration_ms = r.get::<_, i64>(2) as f64 / 1e6;
        for width_s in [3_600i32, 86_400] {
            let width_ns = i64::from(width_s) * 1_000_000_000;
            let key = (
                r.get(0),
                width_s,
                start.div_euclid(width_ns) * width_ns,
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            );
            let g = groups.entry(key).or_default();
            if g.hist.is_empty() {
                g.hist = vec![0; HIST_BUCKETS];
            }
            g.requests += 1;
            g.errors += i64::from(r.get::<_, i16>(7) == 2);
            g.input_tokens += r.get::<_, Option<i64>>(8).unwrap_or(0);
            g.output_tokens += r.get::<_, Option<i64>>(9).unwrap_or(0);
            g.cache_read_tokens += r.get::<_, Option<i64>>(10).unwrap_or(0);
            if let Some(c) = r.get::<_, Option<f64>>(11) {
                g.cost_usd += c;
                g.priced += 1;
            }
            g.hist[hist_index(duration_ms)] += 1;
        }
    }
    if groups.is_empty() {
        return Ok(());
    }
    let stmt = tx
        .prepare(
            "INSERT INTO calls_rollup (project, width_s, bucket_ns, service, provider, model, operation,
                requests, errors, input_tokens, output_tokens, cache_read_tokens, cost_usd, priced, latency_hist)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (project, width_s, bucket_ns, service, provider, model, operation) DO UPDATE SET
                requests = calls_rollup.requests + EXCLUDED.requests,
                errors = calls_rollup.errors + EXCLUDED.errors,
                input_tokens = calls_rollup.input_tokens + EXCLUDED.input_tokens,
                output_tokens = calls_rollup.output_tokens + EXCLUDED.output_tokens,
                cache_read_tokens = calls_rollup.cache_read_tokens + EXCLUDED.cache_read_tokens,
                cost_usd = calls_rollup.cost_usd + EXCLUDED.cost_usd,
                priced = calls_rollup.priced + EXCLUDED.priced,
                latency_hist = (SELECT array_agg(coalesce(a, 0) + coalesce(b, 0) ORDER BY n)
                                FROM unnest(calls_rollup.latency_hist, EXCLUDED.latency_hist)
                                     WITH ORDINALITY AS t(a, b, n))",
        )
        .await?;
    for ((project, width_s, bucket_ns, service, provider, model, operation), g) in groups {
        tx.execute(
            &stmt,
            &[
                &project,
                &width_s,
                &bucket_ns,
                &service,
                &provider,
                &model,
                &operation,
                &g.requests,
                &g.errors,
                &g.input_tokens,
                &g.output_tokens,
                &g.cache_read_tokens,
                &g.cost_usd,
                &g.priced,
                &g.hist,
            ],
        )
        .await?;
    }
    Ok(())
}

/// An advisory-lock key for one trace: transactions refreshing the same trace take turns.
fn trace_lock(project: &str, trace_id: &str) -> i64 {
    use sha2::{Digest, Sha256};
    // A hash every collector version computes alike, so they lock the same key.
    let digest = Sha256::new()
        .chain_update(project)
        .chain_update([0])
        .chain_update(trace_id)
        .finalize();
    i64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

/// Recomputes the trace-list rows of `trace_ids` from their stored spans. Each trace is locked
/// first (in key order, so writers cannot deadlock on each other), so the spans read include
/// those of every transaction that refreshed it before.
pub async fn refresh_traces(
    tx: &Transaction<'_>,
    project: &str,
    trace_ids: &[&str],
) -> Result<(), PostgresError> {
    if trace_ids.is_empty() {
        return Ok(());
    }
    let mut locks: Vec<i64> = trace_ids.iter().map(|t| trace_lock(project, t)).collect();
    locks.sort_unstable();
    locks.dedup();
    tx.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) l",
        &[&locks],
    )
    .await?;
    let mut briefs: HashMap<String, Vec<SpanBrief>> = HashMap::new();
    for r in tx
        .query(
            &format!(
                "SELECT trace_id, {BRIEF_COLUMNS} FROM spans WHERE project = $1 AND trace_id = ANY($2)"
            ),
            &[&project, &trace_ids],
        )
        .await?
    {
        briefs.entry(r.get(0)).or_default().push(SpanBrief {
            span_id: r.get(1),
            is_root: r.get(2),
            name: r.get(3),
            service: r.get(4),
            start_ns: r.get(5),
            end_ns: r.get(6),
            error: r.get(7),
            is_model_call: r.get(8),
            response_id: r.get(9),
            input_tokens: r.get(10),
            output_tokens: r.get(11),
            cost_usd: r.get(12),
            provider: r.get(13),
            request_model: r.get(14),
            response_model: r.get(15),
            operation: r.get(16),
            user_id: r.get(17),
            session_id: r.get(18),
            cache_read_tokens: r.get(19),
        });
    }
    let before: HashMap<String, i64> = tx
        .query(
            "SELECT trace_id, start_ns FROM traces WHERE project = $1 AND trace_id = ANY($2)",
            &[&project, &trace_ids],
        )
        .await?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    #[derive(Default)]
    struct Columns {
        trace_id: Vec<String>,
        start_ns: Vec<i64>,
        duration_ns: Vec<i64>,
        root_name: Vec<Option<String>>,
        service: Vec<Option<String>>,
        span_count: Vec<i64>,
        llm_calls: Vec<i64>,
        input_tokens: Vec<i64>,
        output_tokens: Vec<i64>,
        cost_usd: Vec<Option<f64>>,
        error: Vec<bool>,
    }
    let mut c = Columns::default();
    // (key, start, trace id) rows to forget (the trace's start moved) and to add.
    let mut forget: (Vec<String>, Vec<i64>, Vec<String>) = Default::default();
    let mut add: (Vec<String>, Vec<i64>, Vec<String>) = Default::default();
    for (trace_id, spans) in &briefs {
        let (t, keys) = summarize_trace(trace_id, spans);
        if let Some(&old) = before.get(trace_id).filter(|old| **old != t.start_ns) {
            for key in &keys {
                forget.0.push(key.clone());
                forget.1.push(old);
                forget.2.push(trace_id.clone());
            }
        }
        for key in keys {
            add.0.push(key);
            add.1.push(t.start_ns);
            add.2.push(trace_id.clone());
        }
        c.trace_id.push(t.trace_id);
        c.start_ns.push(t.start_ns);
        c.duration_ns.push(t.duration_ns);
        c.root_name.push(t.root_name);
        c.service.push(t.service);
        c.span_count.push(t.span_count);
        c.llm_calls.push(t.llm_calls);
        c.input_tokens.push(t.input_tokens);
        c.output_tokens.push(t.output_tokens);
        c.cost_usd.push(t.cost_usd);
        c.error.push(t.error);
    }
    tx.execute(
        "INSERT INTO traces (project, trace_id, start_ns, duration_ns, root_name, service,
            span_count, llm_calls, input_tokens, output_tokens, cost_usd, error)
         SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
            $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::float8[], $12::bool[])
         ON CONFLICT (project, trace_id) DO UPDATE SET start_ns = EXCLUDED.start_ns,
            duration_ns = EXCLUDED.duration_ns, root_name = EXCLUDED.root_name,
            service = EXCLUDED.service, span_count = EXCLUDED.span_count,
            llm_calls = EXCLUDED.llm_calls, input_tokens = EXCLUDED.input_tokens,
            output_tokens = EXCLUDED.output_tokens, cost_usd = EXCLUDED.cost_usd,
            error = EXCLUDED.error",
        &[
            &project,
            &c.trace_id,
            &c.start_ns,
            &c.duration_ns,
            &c.root_name,
            &c.service,
            &c.span_count,
            &c.llm_calls,
            &c.input_tokens,
            &c.output_tokens,
            &c.cost_usd,
            &c.error,
        ],
    )
    .await?;
    if !forget.0.is_empty() {
        tx.execute(
            "DELETE FROM trace_keys k USING unnest($2::text[], $3::bigint[], $4::text[])
                AS f(key, start_ns, trace_id)
             WHERE k.project = $1 AND k.key = f.key AND k.start_ns = f.start_ns
               AND k.trace_id = f.trace_id",
            &[&project, &forget.0, &forget.1, &forget.2],
        )
        .await?;
    }
    tx.execute(
        "INSERT INTO trace_keys (project, key, start_ns, trace_id)
         SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::text[])
         ON CONFLICT DO NOTHING",
        &[&project, &add.0, &add.1, &add.2],
    )
    .await?;
    Ok(())
}

/// Writes the trace-list rows of every stored trace (after the migration that adds them).
pub async fn refresh_all_traces(tx: &Transaction<'_>) -> Result<u64, PostgresError> {
    let rows = tx
        .query(
            "SELECT DISTINCT project, trace_id FROM spans ORDER BY 1, 2",
            &[],
        )
        .await?;
    let mut by_project: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in &rows {
        by_project.entry(r.get(0)).or_default().push(r.get(1));
    }
    for (project, ids) in &by_project {
        for chunk in ids.chunks(2_000) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            refresh_traces(tx, project, &ids).await?;
        }
    }
    Ok(rows.len() as u64)
}
