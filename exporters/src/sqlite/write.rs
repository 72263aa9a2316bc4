//! Rows into the `spans`, `logs` and `metric_points` tables of `sql/sqlite/0001_init.sql`.

use rusqlite::{Transaction, params};

use crate::record::{self, AnomalyRow, LogRow, MetricPointRow, SpanRecord};

/// A retried span replaces its earlier copy (same project, trace id and span id). Its resource is
/// stored once in `resources` (`0011_resources.sql`) and named by id.
pub fn insert_spans(tx: &Transaction<'_>, rows: &[SpanRecord]) -> rusqlite::Result<()> {
    let mut resource = tx.prepare_cached(
        "INSERT OR IGNORE INTO resources (project, id, attributes) VALUES (?1, ?2, ?3)",
    )?;
    let mut resource_ids = Vec::with_capacity(rows.len());
    for project in rows.chunk_by(|a, b| a.project == b.project) {
        let (ids, distinct) = record::resource_ids(&project[0].project, project);
        for (attributes, id) in distinct {
            let json = serde_json::to_string(&**attributes).unwrap_or_default();
            resource.execute(params![project[0].project, id, json])?;
        }
        resource_ids.extend(ids);
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO spans (project, trace_id, span_id, parent_span_id, name, kind,
            service, scope_name, start_time_ns, end_time_ns, duration_ns, status_code,
            status_message, operation, provider, request_model, response_model, response_id,
            input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
            cost_usd, session_id, user_id, conversation_id, is_model_call, input_messages,
            output_messages, system_instructions, attributes, resource_attributes, events, links,
            resource_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, '', ?33, ?34,
            ?35)",
    )?;
    for (r, resource_id) in rows.iter().zip(resource_ids) {
        let g = &r.gen_ai;
        stmt.execute(params![
            r.project,
            r.trace_id,
            r.span_id,
            r.parent_span_id,
            r.name,
            r.kind,
            r.service,
            r.scope_name,
            r.start_time_ns,
            r.end_time_ns,
            r.duration_ns(),
            r.status_code,
            r.status_message,
            g.operation,
            g.provider,
            g.request_model,
            g.response_model,
            g.response_id,
            g.input_tokens,
            g.output_tokens,
            g.cache_read_tokens,
            g.cache_write_tokens,
            g.reasoning_tokens,
            g.cost_usd,
            g.session_id,
            g.user_id,
            g.conversation_id,
            g.is_model_call,
            g.input_messages,
            g.output_messages,
            g.system_instructions,
            serde_json::to_string(&record::strip_typed(&r.attributes, g)).unwrap_or_default(),
            r.events,
            r.links,
            resource_id,
        ])?;
    }
    Ok(())
}

pub fn insert_logs(tx: &Transaction<'_>, rows: &[LogRow]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO logs (project, time_ns, observed_time_ns, trace_id, span_id,
            severity_number, severity_text, event_name, service, scope_name, body, attributes,
            resource_attributes, input_messages, output_messages, system_instructions, record_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?;
    for r in rows {
        stmt.execute(params![
            r.project,
            r.time_ns,
            r.observed_time_ns,
            r.trace_id,
            r.span_id,
            r.severity_number,
            r.severity_text,
            r.event_name,
            r.service,
            r.scope_name,
            r.body,
            r.attributes,
            r.resource_attributes,
            r.input_messages,
            r.output_messages,
            r.system_instructions,
            r.record_id(),
        ])?;
    }
    Ok(())
}

pub fn insert_metric_points(tx: &Transaction<'_>, rows: &[MetricPointRow]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO metric_points (project, time_ns, start_time_ns, service, scope_name, name,
            unit, kind, value, count, attributes, resource_attributes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for r in rows {
        stmt.execute(params![
            r.project,
            r.time_ns,
            r.start_time_ns,
            r.service,
            r.scope_name,
            r.name,
            r.unit,
            r.kind,
            r.value,
            r.count,
            r.attributes,
            r.resource_attributes,
        ])?;
    }
    Ok(())
}

pub fn insert_anomalies(tx: &Transaction<'_>, rows: &[AnomalyRow]) -> rusqlite::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO anomalies (project, time_ns, kind, service, provider, model,
            operation, score, value, baseline, trace_id, span_id, message, attributes, record_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?;
    for r in rows {
        stmt.execute(params![
            r.project,
            r.time_ns,
            r.kind,
            r.service,
            r.provider,
            r.model,
            r.operation,
            r.score,
            r.value,
            r.baseline,
            r.trace_id,
            r.span_id,
            r.message,
            r.attributes,
            r.record_id(),
        ])?;
    }
    Ok(())
}
