//! Rows for the tables of `sql/clickhouse/`, each next to its column list. The column lists
//! must match the DDL; the integration tests insert through them into the real schema.

use super::rowbinary::{Column, RowBinary};
use crate::record::{AnomalyRow, LogRow, MetricPointRow, SpanRecord};

pub const SPAN_COLUMNS: &[Column] = &[
    ("project", "LowCardinality(String)"),
    ("start_time", "DateTime64(9, 'UTC')"),
    ("end_time", "DateTime64(9, 'UTC')"),
    ("duration_ns", "Int64"),
    ("trace_id", "String"),
    ("span_id", "String"),
    ("parent_span_id", "String"),
    ("name", "String"),
    ("kind", "Int8"),
    ("service", "LowCardinality(String)"),
    ("scope_name", "LowCardinality(String)"),
    ("status_code", "Int8"),
    ("status_message", "String"),
    ("operation", "LowCardinality(String)"),
    ("provider", "LowCardinality(String)"),
    ("request_model", "LowCardinality(String)"),
    ("response_model", "LowCardinality(String)"),
    ("response_id", "String"),
    ("input_tokens", "Nullable(Int64)"),
    ("output_tokens", "Nullable(Int64)"),
    ("cache_read_tokens", "Nullable(Int64)"),
    ("cache_write_tokens", "Nullable(Int64)"),
    ("reasoning_tokens", "Nullable(Int64)"),
    ("cost_usd", "Nullable(Float64)"),
    ("session_id", "String"),
    ("user_id", "String"),
    ("conversation_id", "String"),
    ("is_model_call", "UInt8"),
    ("counted", "UInt8"),
    ("input_messages", "String"),
    ("output_messages", "String"),
    ("system_instructions", "String"),
    ("attributes", "Map(LowCardinality(String), String)"),
    ("resource_attributes", "Map(LowCardinality(String), String)"),
    ("events", "String"),
    ("links", "String"),
];

pub fn encode_spans(rows: &[SpanRecord]) -> Vec<u8> {
    let mut w = RowBinary::new(SPAN_COLUMNS, rows.len() * 1024);
    for (r, counted) in rows.iter().zip(crate::record::counted_calls(rows)) {
        let g = &r.gen_ai;
        w.string(&r.project);
        w.i64(r.start_time_ns);
        w.i64(r.end_time_ns);
        w.i64(r.duration_ns());
        w.string(&r.trace_id);
        w.string(&r.span_id);
        w.opt_string(r.parent_span_id.as_deref());
        w.string(&r.name);
        w.i8(r.kind as i8);
        w.opt_string(r.service.as_deref());
        w.opt_string(r.scope_name.as_deref());
        w.i8(r.status_code as i8);
        w.opt_string(r.status_message.as_deref());
        w.opt_string(g.operation.as_deref());
        w.opt_string(g.provider.as_deref());
        w.opt_string(g.request_model.as_deref());
        w.opt_string(g.response_model.as_deref());
        w.opt_string(g.response_id.as_deref());
        w.nullable_i64(g.input_tokens);
        w.nullable_i64(g.output_tokens);
        w.nullable_i64(g.cache_read_tokens);
        w.nullable_i64(g.cache_write_tokens);
        w.nullable_i64(g.reasoning_tokens);
        w.nullable_f64(g.cost_usd);
        w.opt_string(g.session_id.as_deref());
        w.opt_string(g.user_id.as_deref());
        w.opt_string(g.conversation_id.as_deref());
        w.u8(u8::from(g.is_model_call));
        w.u8(u8::from(counted));
        w.opt_string(g.input_messages.as_deref());
        w.opt_string(g.output_messages.as_deref());
        w.opt_string(g.system_instructions.as_deref());
        w.json_map(&r.attributes);
        w.json_map(&r.resource_attributes);
        w.string(&r.events);
        w.string(&r.links);
    }
    w.buf
}

pub const LOG_COLUMNS: &[Column] = &[
    ("project", "LowCardinality(String)"),
    ("time", "DateTime64(9, 'UTC')"),
    ("observed_time", "DateTime64(9, 'UTC')"),
    ("trace_id", "String"),
    ("span_id", "String"),
    ("severity_number", "Int8"),
    ("severity_text", "LowCardinality(String)"),
    ("event_name", "LowCardinality(String)"),
    ("service", "LowCardinality(String)"),
    ("scope_name", "LowCardinality(String)"),
    ("body", "String"),
    ("attributes", "Map(LowCardinality(String), String)"),
    ("resource_attributes", "Map(LowCardinality(String), String)"),
    ("input_messages", "String"),
    ("output_messages", "String"),
    ("system_instructions", "String"),
];

fn map_of(json_object: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(json_object).unwrap_or_default()
}

pub fn encode_logs(rows: &[LogRow]) -> Vec<u8> {
    let mut w = RowBinary::new(LOG_COLUMNS, rows.len() * 512);
    for r in rows {
        w.string(&r.project);
        w.i64(r.time_ns);
        w.i64(r.observed_time_ns);
        w.opt_string(r.trace_id.as_deref());
        w.opt_string(r.span_id.as_deref());
        w.i8(r.severity_number.clamp(0, 127) as i8);
        w.opt_string(r.severity_text.as_deref());
        w.opt_string(r.event_name.as_deref());
        w.opt_string(r.service.as_deref());
        w.opt_string(r.scope_name.as_deref());
        w.opt_string(r.body.as_deref());
        w.json_map(&map_of(&r.attributes));
        w.json_map(&map_of(&r.resource_attributes));
        w.opt_string(r.input_messages.as_deref());
        w.opt_string(r.output_messages.as_deref());
        w.opt_string(r.system_instructions.as_deref());
    }
    w.buf
}

pub const ANOMALY_COLUMNS: &[Column] = &[
    ("project", "LowCardinality(String)"),
    ("time", "DateTime64(9, 'UTC')"),
    ("kind", "LowCardinality(String)"),
    ("service", "LowCardinality(String)"),
    ("provider", "LowCardinality(String)"),
    ("model", "LowCardinality(String)"),
    ("operation", "LowCardinality(String)"),
    ("score", "Float64"),
    ("value", "Float64"),
    ("baseline", "Float64"),
    ("trace_id", "String"),
    ("span_id", "String"),
    ("message", "String"),
    ("attributes", "Map(LowCardinality(String), String)"),
];

pub fn encode_anomalies(rows: &[AnomalyRow]) -> Vec<u8> {
    let mut w = RowBinary::new(ANOMALY_COLUMNS, rows.len() * 256);
    for r in rows {
        w.string(&r.project);
        w.i64(r.time_ns);
        w.string(&r.kind);
        w.opt_string(r.service.as_deref());
        w.opt_string(r.provider.as_deref());
        w.opt_string(r.model.as_deref());
        w.opt_string(r.operation.as_deref());
        w.f64(r.score.unwrap_or(f64::NAN));
        w.f64(r.value.unwrap_or(f64::NAN));
        w.f64(r.baseline.unwrap_or(f64::NAN));
        w.opt_string(r.trace_id.as_deref());
        w.opt_string(r.span_id.as_deref());
        w.opt_string(r.message.as_deref());
        w.json_map(&map_of(&r.attributes));
    }
    w.buf
}

pub const METRIC_COLUMNS: &[Column] = &[
    ("project", "LowCardinality(String)"),
    ("time", "DateTime64(9, 'UTC')"),
    ("start_time", "DateTime64(9, 'UTC')"),
    ("service", "LowCardinality(String)"),
    ("scope_name", "LowCardinality(String)"),
    ("name", "LowCardinality(String)"),
    ("unit", "LowCardinality(String)"),
    ("kind", "LowCardinality(String)"),
    ("value", "Nullable(Float64)"),
    ("count", "Nullable(Int64)"),
    ("attributes", "Map(LowCardinality(String), String)"),
    ("resource_attributes", "Map(LowCardinality(String), String)"),
];

pub fn encode_metrics(rows: &[MetricPointRow]) -> Vec<u8> {
    let mut w = RowBinary::new(METRIC_COLUMNS, rows.len() * 256);
    for r in rows {
        w.string(&r.project);
        w.i64(r.time_ns);
        w.i64(r.start_time_ns.unwrap_or(0));
        w.opt_string(r.service.as_deref());
        w.opt_string(r.scope_name.as_deref());
        w.string(&r.name);
        w.opt_string(r.unit.as_deref());
        w.string(r.kind);
        w.nullable_f64(r.value);
        w.nullable_i64(r.count);
        w.json_map(&map_of(&r.attributes));
        w.json_map(&map_of(&r.resource_attributes));
    }
    w.buf
}

/// The column list of an `INSERT INTO t (...)`.
pub fn column_list(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}
