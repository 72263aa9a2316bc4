//! OTLP flattened into rows, the same for every store: one [`SpanRecord`] per span, one
//! [`LogRow`] per log record, one [`MetricPointRow`] per data point.

use llmscope_core::attr;
use llmscope_core::otlp::common::v1::{InstrumentationScope, KeyValue};
use llmscope_core::otlp::logs::v1::ResourceLogs;
use llmscope_core::otlp::metrics::v1::{ResourceMetrics, metric::Data};
use llmscope_core::otlp::resource::v1::Resource;
use llmscope_core::otlp::trace::v1::{ResourceSpans, Span};
use llmscope_core::semconv::{self as sc, GenAiFields};
use std::sync::Arc;

use serde_json::{Map, Value as J, json};

/// Attributes as a JSON object: key to the attribute's value in plain JSON.
pub type JsonMap = Map<String, J>;

/// Content attributes kept in their own columns rather than in the attributes JSON.
const CONTENT_KEYS: [&str; 3] = [
    sc::INPUT_MESSAGES,
    sc::OUTPUT_MESSAGES,
    sc::SYSTEM_INSTRUCTIONS,
];

#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub project: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: i32,
    pub service: Option<String>,
    pub scope_name: Option<String>,
    pub start_time_ns: i64,
    pub end_time_ns: i64,
    pub status_code: i32,
    pub status_message: Option<String>,
    pub gen_ai: GenAiFields,
    /// The span's attributes as JSON values, without the content attributes.
    pub attributes: JsonMap,
    /// Shared by every span of one resource.
    pub resource_attributes: Arc<JsonMap>,
    pub events: String,
    pub links: String,
}

impl SpanRecord {
    pub fn duration_ns(&self) -> i64 {
        self.end_time_ns.saturating_sub(self.start_time_ns).max(0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub project: String,
    pub time_ns: i64,
    pub observed_time_ns: i64,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub severity_number: i32,
    pub severity_text: Option<String>,
    pub event_name: Option<String>,
    pub service: Option<String>,
    pub scope_name: Option<String>,
    pub body: Option<String>,
    pub attributes: String,
    pub resource_attributes: String,
    pub input_messages: Option<String>,
    pub output_messages: Option<String>,
    pub system_instructions: Option<String>,
}

/// An anomaly event (`event.name = llmscope.anomaly`), typed.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyRow {
    pub project: String,
    pub time_ns: i64,
    pub kind: String,
    pub service: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub operation: Option<String>,
    pub score: Option<f64>,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub message: Option<String>,
    pub attributes: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricPointRow {
    pub project: String,
    pub time_ns: i64,
    pub start_time_ns: Option<i64>,
    pub service: Option<String>,
    pub scope_name: Option<String>,
    pub name: String,
    pub unit: Option<String>,
    pub kind: &'static str,
    pub value: Option<f64>,
    pub count: Option<i64>,
    pub attributes: String,
    pub resource_attributes: String,
}

fn hex_id(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty() && bytes.iter().any(|b| *b != 0)).then(|| hex::encode(bytes))
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn nanos(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn resource_parts(resource: Option<&Resource>) -> (Option<String>, String) {
    let attrs = resource.map(|r| &r.attributes[..]).unwrap_or_default();
    let service = attr::get_str(attrs, sc::SERVICE_NAME).map(str::to_owned);
    (service, J::Object(attr::attrs_to_json(attrs)).to_string())
}

fn scope_name(scope: Option<&InstrumentationScope>) -> Option<String> {
    scope.and_then(|s| non_empty(&s.name))
}

fn attrs_without_content(attrs: &[KeyValue]) -> JsonMap {
    let mut map: JsonMap = attr::attrs_to_json(attrs);
    for key in CONTENT_KEYS {
        map.remove(key);
    }
    map
}

/// Every span of a traces payload as a row.
pub fn span_records(project: &str, resource_spans: &[ResourceSpans]) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    for rs in resource_spans {
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or_default();
        let service = attr::get_str(attrs, sc::SERVICE_NAME).map(str::to_owned);
        let resource_attributes = Arc::new(attr::attrs_to_json(attrs));
        for ss in &rs.scope_spans {
            let scope = scope_name(ss.scope.as_ref());
            for span in &ss.spans {
                out.push(span_record(
                    project,
                    span,
                    service.clone(),
                    scope.clone(),
                    Arc::clone(&resource_attributes),
                ));
            }
        }
    }
    out
}

fn span_record(
    project: &str,
    span: &Span,
    service: Option<String>,
    scope_name: Option<String>,
    resource_attributes: Arc<JsonMap>,
) -> SpanRecord {
    let events: Vec<J> = span
        .events
        .iter()
        .map(|e| {
            json!({"name": e.name, "time_unix_nano": nanos(e.time_unix_nano),
                "attributes": attr::attrs_to_json(&e.attributes)})
        })
        .collect();
    let links: Vec<J> = span
        .links
        .iter()
        .map(|l| {
            json!({"trace_id": hex::encode(&l.trace_id), "span_id": hex::encode(&l.span_id),
                "attributes": attr::attrs_to_json(&l.attributes)})
        })
        .collect();
    let status = span.status.as_ref();
    SpanRecord {
        project: project.to_owned(),
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: hex_id(&span.parent_span_id),
        name: span.name.clone(),
        kind: span.kind,
        service,
        scope_name,
        start_time_ns: nanos(span.start_time_unix_nano),
        end_time_ns: nanos(span.end_time_unix_nano),
        status_code: status.map_or(0, |s| s.code),
        status_message: status.and_then(|s| non_empty(&s.message)),
        gen_ai: GenAiFields::read(&span.attributes),
        attributes: attrs_without_content(&span.attributes),
        resource_attributes,
        events: J::Array(events).to_string(),
        links: J::Array(links).to_string(),
    }
}

/// The canonical GenAI attributes the typed fields hold, as the attributes JSON holds them.
fn typed_attributes(g: &GenAiFields) -> [(&'static str, Option<J>); 14] {
    let s = |v: &Option<String>| v.as_ref().map(|v| J::String(v.clone()));
    let n = |v: Option<i64>| v.map(J::from);
    [
        (sc::OPERATION_NAME, s(&g.operation)),
        (sc::PROVIDER_NAME, s(&g.provider)),
        (sc::REQUEST_MODEL, s(&g.request_model)),
        (sc::RESPONSE_MODEL, s(&g.response_model)),
        (sc::RESPONSE_ID, s(&g.response_id)),
        (sc::USAGE_INPUT_TOKENS, n(g.input_tokens)),
        (sc::USAGE_OUTPUT_TOKENS, n(g.output_tokens)),
        (sc::USAGE_CACHE_READ_INPUT_TOKENS, n(g.cache_read_tokens)),
        (
            sc::USAGE_CACHE_CREATION_INPUT_TOKENS,
            n(g.cache_write_tokens),
        ),
        (sc::USAGE_REASONING_OUTPUT_TOKENS, n(g.reasoning_tokens)),
        (
            sc::COST_TOTAL_USD,
            g.cost_usd
                .and_then(serde_json::Number::from_f64)
                .map(J::Number),
        ),
        (sc::SESSION_ID, s(&g.session_id)),
        (sc::USER_ID, s(&g.user_id)),
        (sc::CONVERSATION_ID, s(&g.conversation_id)),
    ]
}

/// The attributes a store writes beside the typed columns: without the entries that
/// [`restore_typed`] gives back exactly from those columns (same key, same JSON value), so each
/// value is stored once. Anything else (a token count sent as text, say) stays. A view: it
/// serializes without copying the attributes.
pub fn strip_typed<'a>(attributes: &'a JsonMap, g: &GenAiFields) -> Untyped<'a> {
    Untyped {
        attributes,
        typed: typed_attributes(g),
    }
}

/// See [`strip_typed`].
pub struct Untyped<'a> {
    attributes: &'a JsonMap,
    typed: [(&'static str, Option<J>); 14],
}

impl Untyped<'_> {
    pub fn iter(&self) -> impl Iterator<Item = (&String, &J)> {
        self.attributes.iter().filter(|(key, value)| {
            !self
                .typed
                .iter()
                .any(|(k, v)| k == key && v.as_ref() == Some(*value))
        })
    }

    pub fn to_map(&self) -> JsonMap {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl serde::Serialize for Untyped<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// The attributes as sent, from what [`strip_typed`] kept and the typed columns. Rows written
/// before stripping already hold every entry and are left as they are.
pub fn restore_typed(attributes: &mut JsonMap, g: &GenAiFields) {
    for (key, value) in typed_attributes(g) {
        if let Some(value) = value {
            attributes.entry(key).or_insert(value);
        }
    }
}

/// Every record of a logs payload as a row: anomaly events as [`AnomalyRow`]s, the rest as
/// [`LogRow`]s.
pub fn log_rows(project: &str, resource_logs: &[ResourceLogs]) -> (Vec<LogRow>, Vec<AnomalyRow>) {
    let mut out = Vec::new();
    let mut anomalies = Vec::new();
    for rl in resource_logs {
        let (service, resource_attributes) = resource_parts(rl.resource.as_ref());
        for sl in &rl.scope_logs {
            let scope = scope_name(sl.scope.as_ref());
            for r in &sl.log_records {
                if sc::event_name(r) == Some(sc::ANOMALY_EVENT) {
                    anomalies.push(anomaly_row(project, r, service.clone()));
                    continue;
                }
                let content = GenAiFields::read(&r.attributes);
                let time = if r.time_unix_nano != 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                out.push(LogRow {
                    project: project.to_owned(),
                    time_ns: nanos(time),
                    observed_time_ns: nanos(r.observed_time_unix_nano),
                    trace_id: hex_id(&r.trace_id),
                    span_id: hex_id(&r.span_id),
                    severity_number: r.severity_number,
                    severity_text: non_empty(&r.severity_text),
                    event_name: sc::event_name(r).map(str::to_owned),
                    service: service.clone(),
                    scope_name: scope.clone(),
                    body: r.body.as_ref().map(|b| attr::any_to_json(b).to_string()),
                    attributes: J::Object(attrs_without_content(&r.attributes)).to_string(),
                    resource_attributes: resource_attributes.clone(),
                    input_messages: content.input_messages,
                    output_messages: content.output_messages,
                    system_instructions: content.system_instructions,
                });
            }
        }
    }
    (out, anomalies)
}

fn anomaly_row(
    project: &str,
    r: &llmscope_core::otlp::logs::v1::LogRecord,
    service: Option<String>,
) -> AnomalyRow {
    let a = &r.attributes;
    let text = |k| attr::get_str(a, k).map(str::to_owned);
    let time = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    AnomalyRow {
        project: project.to_owned(),
        time_ns: nanos(time),
        kind: text(sc::ANOMALY_KIND).unwrap_or_else(|| "unknown".into()),
        service,
        provider: text(sc::PROVIDER_NAME),
        model: text(sc::REQUEST_MODEL),
        operation: text(sc::OPERATION_NAME),
        score: attr::get_f64(a, sc::ANOMALY_SCORE),
        value: attr::get_f64(a, sc::ANOMALY_VALUE),
        baseline: attr::get_f64(a, sc::ANOMALY_BASELINE),
        trace_id: hex_id(&r.trace_id),
        span_id: hex_id(&r.span_id),
        message: r.body.as_ref().and_then(|b| match &b.value {
            Some(llmscope_core::otlp::common::v1::any_value::Value::StringValue(s)) => {
                Some(s.clone())
            }
            _ => None,
        }),
        attributes: J::Object(attr::attrs_to_json(a)).to_string(),
    }
}

/// Every data point of a metrics payload as a row: gauges and sums with their value,
/// histograms and summaries with their sum and count.
pub fn metric_rows(project: &str, resource_metrics: &[ResourceMetrics]) -> Vec<MetricPointRow> {
    let mut out = Vec::new();
    for rm in resource_metrics {
        let (service, resource_attributes) = resource_parts(rm.resource.as_ref());
        for sm in &rm.scope_metrics {
            let scope = scope_name(sm.scope.as_ref());
            for m in &sm.metrics {
                let mut push = |kind, time: u64, start: u64, value, count, attrs: &[KeyValue]| {
                    out.push(MetricPointRow {
                        project: project.to_owned(),
                        time_ns: nanos(time),
                        start_time_ns: (start != 0).then(|| nanos(start)),
                        service: service.clone(),
                        scope_name: scope.clone(),
                        name: m.name.clone(),
                        unit: non_empty(&m.unit),
                        kind,
                        value,
                        count,
                        attributes: J::Object(attr::attrs_to_json(attrs)).to_string(),
                        resource_attributes: resource_attributes.clone(),
                    });
                };
                use llmscope_core::otlp::metrics::v1::number_data_point::Value as N;
                let number = |v: &Option<N>| match v {
                    Some(N::AsDouble(d)) => Some(*d),
                    Some(N::AsInt(i)) => Some(*i as f64),
                    None => None,
                };
                let count = |c: u64| Some(i64::try_from(c).unwrap_or(i64::MAX));
                match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.iter().for_each(|p| {
                        push(
                            "gauge",
                            p.time_unix_nano,
                            p.start_time_unix_nano,
                            number(&p.value),
                            None,
                            &p.attributes,
                        )
                    }),
                    Some(Data::Sum(s)) => s.data_points.iter().for_each(|p| {
                        push(
                            "sum",
                            p.time_unix_nano,
                            p.start_time_unix_nano,
                            number(&p.value),
                            None,
                            &p.attributes,
                        )
                    }),
                    Some(Data::Histogram(h)) => h.data_points.iter().for_each(|p| {
                        push(
                            "histogram",
                            p.time_unix_nano,
                            p.start_time_unix_nano,
                            p.sum,
                            count(p.count),
                            &p.attributes,
                        )
                    }),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.iter().for_each(|p| {
                        push(
                            "exponential_histogram",
                            p.time_unix_nano,
                            p.start_time_unix_nano,
                            p.sum,
                            count(p.count),
                            &p.attributes,
                        )
                    }),
                    Some(Data::Summary(s)) => s.data_points.iter().for_each(|p| {
                        push(
                            "summary",
                            p.time_unix_nano,
                            p.start_time_unix_nano,
                            Some(p.sum),
                            count(p.count),
                            &p.attributes,
                        )
                    }),
                    None => {}
                }
            }
        }
    }
    out
}

/// Which spans rollups count: every model call once. Of spans sharing a response id in `rows`
/// (an SDK's span and an instrumentation's span of one call), the one with the most complete
/// usage, as the raw-row summaries choose.
pub fn counted_calls(rows: &[SpanRecord]) -> Vec<bool> {
    let mut order: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].gen_ai.is_model_call)
        .collect();
    order.sort_by_key(|&i| {
        let g = &rows[i].gen_ai;
        (
            g.input_tokens.is_none(),
            g.cost_usd.is_none(),
            rows[i].start_time_ns,
            rows[i].span_id.clone(),
        )
    });
    let mut seen = std::collections::HashSet::new();
    let mut out = vec![false; rows.len()];
    for i in order {
        let g = &rows[i].gen_ai;
        let key = g
            .response_id
            .clone()
            .unwrap_or_else(|| format!("{}{}", rows[i].trace_id, rows[i].span_id));
        out[i] = seen.insert(key);
    }
    out
}

/// FNV-1a over length-prefixed parts: a hash that stays the same across builds and platforms,
/// so a record retried after an upgrade still has the id it was stored under.
pub(crate) fn stable_hash(parts: &[&[u8]]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            h ^= u64::from(*byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h as i64
}

/// A resource's identity in a project: stores that keep each distinct resource once name it by
/// this (a collision between two of a project's resources, about 2^-64 per pair, would show one
/// resource's attributes for the other's spans).
pub fn resource_id(project: &str, attributes: &JsonMap) -> i64 {
    let json = serde_json::to_string(attributes).unwrap_or_default();
    stable_hash(&[project.as_bytes(), json.as_bytes()])
}

/// Distinct resources with their ids ([`resource_ids`]).
pub type Resources<'a> = Vec<(&'a std::sync::Arc<JsonMap>, i64)>;

/// Each span's resource id ([`resource_id`]), in order, and each distinct resource once with its
/// id: spans of one resource share its map, so each is hashed once.
pub fn resource_ids<'a>(project: &str, spans: &'a [SpanRecord]) -> (Vec<i64>, Resources<'a>) {
    let mut distinct = Resources::new();
    let mut ids = Vec::with_capacity(spans.len());
    for span in spans {
        let found = distinct
            .iter()
            .find(|(r, _)| std::sync::Arc::ptr_eq(r, &span.resource_attributes));
        let id = match found {
            Some((_, id)) => *id,
            None => {
                let id = resource_id(project, &span.resource_attributes);
                if !distinct.iter().any(|(_, known)| *known == id) {
                    distinct.push((&span.resource_attributes, id));
                }
                id
            }
        };
        ids.push(id);
    }
    (ids, distinct)
}

fn opt(s: &Option<String>) -> &[u8] {
    s.as_deref().unwrap_or("\u{0}").as_bytes()
}

impl LogRow {
    /// The record's identity: a retried batch carries the same ids, and stores keep one row each.
    pub fn record_id(&self) -> i64 {
        stable_hash(&[
            self.project.as_bytes(),
            &self.time_ns.to_le_bytes(),
            &self.observed_time_ns.to_le_bytes(),
            opt(&self.trace_id),
            opt(&self.span_id),
            opt(&self.event_name),
            opt(&self.body),
            self.attributes.as_bytes(),
        ])
    }
}

impl AnomalyRow {
    /// The event's identity, as for [`LogRow::record_id`].
    pub fn record_id(&self) -> i64 {
        stable_hash(&[
            self.project.as_bytes(),
            &self.time_ns.to_le_bytes(),
            self.kind.as_bytes(),
            opt(&self.trace_id),
            opt(&self.span_id),
            opt(&self.service),
            opt(&self.model),
            self.attributes.as_bytes(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmscope_core::attr;

    #[test]
    fn typed_attributes_are_stored_once_and_restored_exactly() {
        let mut attrs = Vec::new();
        attr::set(&mut attrs, sc::OPERATION_NAME, attr::string("chat"));
        attr::set(&mut attrs, sc::REQUEST_MODEL, attr::string("gpt-4o"));
        attr::set(&mut attrs, sc::USAGE_INPUT_TOKENS, attr::int(12));
        // Sent as text: the typed column holds 7, the attribute must stay "7".
        attr::set(&mut attrs, sc::USAGE_OUTPUT_TOKENS, attr::string("7"));
        // A whole number cost sent as an int: the typed column holds 2.0.
        attr::set(&mut attrs, sc::COST_TOTAL_USD, attr::int(2));
        attr::set(&mut attrs, "app.tenant", attr::string("acme"));
        let g = GenAiFields::read(&attrs);
        let attributes = attrs_without_content(&attrs);

        let stored = strip_typed(&attributes, &g).to_map();
        assert_eq!(
            serde_json::to_string(&strip_typed(&attributes, &g)).expect("json"),
            serde_json::to_string(&stored).expect("json"),
            "the view serializes as the map"
        );
        let kept: Vec<&str> = stored.keys().map(String::as_str).collect();
        assert_eq!(
            kept,
            [sc::USAGE_OUTPUT_TOKENS, sc::COST_TOTAL_USD, "app.tenant"]
        );
        let mut restored = stored;
        restore_typed(&mut restored, &g);
        assert_eq!(restored, attributes);
        assert_eq!(restored[sc::USAGE_OUTPUT_TOKENS], J::from("7"));
        assert_eq!(restored[sc::COST_TOTAL_USD], J::from(2));

        // A row written before stripping is read as it is.
        let mut old = attributes.clone();
        restore_typed(&mut old, &g);
        assert_eq!(old, attributes);
    }
}
