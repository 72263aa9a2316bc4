//! The write path: binary `COPY` into per-connection staging tables, deduplicating inserts, and
//! the trace list and rollups brought up to date (`summaries`), in one transaction.

use std::collections::BTreeSet;
use std::pin::pin;

use llmscope_core::{Batch, Payload};
use serde_json::Value as J;
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::partitions::{self, DAY_NS};
use super::{PostgresError, PostgresStore, pool_error, summaries};
use crate::record::{self, AnomalyRow, LogRow, MetricPointRow, SpanRecord};

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
        let resource_ids = store_resources(&tx, project, &spans).await?;
        copy_spans(&tx, &spans, &resource_ids).await?;
        let touched: Vec<&str> = spans
            .iter()
            .map(|s| s.trace_id.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let before = summaries::lock_and_read(&tx, project, &touched, &spans).await?;
        tx.execute(
            "INSERT INTO spans SELECT * FROM spans_stage ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
        summaries::refresh(&tx, project, &touched, before).await?;
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
    drop(client);
    store
        .statistics
        .after_write(store.pool(), &written(&spans, &logs))
        .await;
    Ok(())
}

/// Rows a batch wrote per table (partitions by name; the trace list and rollups by the traces
/// touched, a proxy for their rows), for [`super::statistics`].
fn written(spans: &[SpanRecord], logs: &[LogRow]) -> Vec<(String, u64)> {
    let mut out: std::collections::BTreeMap<String, u64> = Default::default();
    for s in spans {
        *out.entry(partitions::name(
            "spans",
            s.start_time_ns.div_euclid(DAY_NS),
        ))
        .or_default() += 1;
    }
    for l in logs {
        *out.entry(partitions::name("logs", l.time_ns.div_euclid(DAY_NS)))
            .or_default() += 1;
    }
    let traces = spans
        .iter()
        .map(|s| s.trace_id.as_str())
        .collect::<BTreeSet<_>>()
        .len() as u64;
    for table in ["traces", "trace_keys", "rollups"] {
        out.insert(table.to_owned(), traces);
    }
    out.into_iter().collect()
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

/// Stores each distinct resource of `spans` once (`0005_resources.sql`); returns each span's
/// resource id, in order.
async fn store_resources(
    tx: &Transaction<'_>,
    project: &str,
    spans: &[SpanRecord],
) -> Result<Vec<i64>, PostgresError> {
    let (ids, distinct) = record::resource_ids(project, spans);
    let insert = tx
        .prepare(
            "INSERT INTO resources (project, id, attributes) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    for (attributes, id) in distinct {
        let json = J::Object((**attributes).clone());
        tx.execute(&insert, &[&project, &id, &json]).await?;
    }
    Ok(ids)
}

async fn copy_spans(
    tx: &Transaction<'_>,
    spans: &[SpanRecord],
    resource_ids: &[i64],
) -> Result<(), PostgresError> {
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
        T::INT8,
    ];
    let counted = record::counted_calls(spans);
    let rows = spans
        .iter()
        .zip(counted)
        .zip(resource_ids)
        .map(|((r, counted), resource_id)| {
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
                b(J::Object(record::strip_typed(&r.attributes, g).to_map())),
                b(None::<J>),
                b(json(&r.events)),
                b(json(&r.links)),
                b(*resource_id),
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
