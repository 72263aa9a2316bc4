//! The JSON the API answers with.

use llmscope_exporters::query::{EventRow, ScoreGroup, SummaryGroup, SummaryQuery, TracePage};
use llmscope_exporters::record::{AnomalyRow, SpanRecord};
use serde_json::{Value as J, json};

use super::params::rfc3339;

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

pub fn trace_page(page: &TracePage) -> J {
    let traces: Vec<J> = page
        .traces
        .iter()
        .map(|t| {
            json!({
                "trace_id": t.trace_id,
                "service": t.service,
                "root_name": t.root_name,
                "start_time": rfc3339(t.start_ns),
                "duration_ms": ms(t.duration_ns),
                "span_count": t.span_count,
                "llm_calls": t.llm_calls,
                "input_tokens": t.input_tokens,
                "output_tokens": t.output_tokens,
                "cost_usd": t.cost_usd,
                "error": t.error,
            })
        })
        .collect();
    json!({"traces": traces, "next_cursor": page.next_cursor.as_ref().map(|c| c.encode())})
}

fn kind(k: i32) -> &'static str {
    match k {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

fn status(code: i32) -> &'static str {
    match code {
        1 => "ok",
        2 => "error",
        _ => "unset",
    }
}

fn parsed(text: &Option<String>) -> J {
    text.as_deref().map_or(J::Null, |t| {
        serde_json::from_str(t).unwrap_or_else(|_| J::String(t.to_owned()))
    })
}

pub(crate) fn span(s: &SpanRecord) -> J {
    let g = &s.gen_ai;
    let genai = (g.operation.is_some()
        || g.provider.is_some()
        || g.request_model.is_some()
        || g.response_model.is_some())
    .then(|| {
        json!({
            "operation": g.operation,
            "provider": g.provider,
            "request_model": g.request_model,
            "response_model": g.response_model,
            "response_id": g.response_id,
            "input_tokens": g.input_tokens,
            "output_tokens": g.output_tokens,
            "cache_read_tokens": g.cache_read_tokens,
            "cache_write_tokens": g.cache_write_tokens,
            "reasoning_tokens": g.reasoning_tokens,
            "cost_usd": g.cost_usd,
            "input_messages": parsed(&g.input_messages),
            "output_messages": parsed(&g.output_messages),
            "system_instructions": parsed(&g.system_instructions),
            "session_id": g.session_id,
            "user_id": g.user_id,
            "conversation_id": g.conversation_id,
            "model_call": g.is_model_call,
        })
    });
    json!({
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "name": s.name,
        "kind": kind(s.kind),
        "service": s.service,
        "scope": s.scope_name,
        "start_time": rfc3339(s.start_time_ns),
        "end_time": rfc3339(s.end_time_ns),
        "duration_ms": ms(s.duration_ns()),
        "status": status(s.status_code),
        "status_message": s.status_message,
        "attributes": s.attributes,
        "resource": *s.resource_attributes,
        "events": serde_json::from_str::<J>(&s.events).unwrap_or_else(|_| json!([])),
        "links": serde_json::from_str::<J>(&s.links).unwrap_or_else(|_| json!([])),
        "gen_ai": genai,
    })
}

/// A trace: its spans, and beside them its custom events and its scores, oldest first.
pub fn trace_detail(trace_id: &str, spans: &[SpanRecord], events: &[EventRow]) -> J {
    let (mut scores, mut others) = (Vec::new(), Vec::new());
    for e in events.iter().rev() {
        match e.score() {
            Some(s) => scores.push(score(e, &s)),
            None => others.push(event(e)),
        }
    }
    json!({
        "trace_id": trace_id,
        "spans": spans.iter().map(span).collect::<Vec<_>>(),
        "events": others,
        "scores": scores,
    })
}

pub(crate) fn event(e: &EventRow) -> J {
    json!({
        "time": rfc3339(e.time_ns),
        "name": e.name,
        "trace_id": e.trace_id,
        "span_id": e.span_id,
        "service": e.service,
        "severity": e.severity_text,
        "body": e.body,
        "attributes": e.attributes,
    })
}

/// A score event as a score.
fn score(e: &EventRow, s: &llmscope_core::score::Score) -> J {
    json!({
        "time": rfc3339(e.time_ns),
        "name": s.name,
        "value": s.value.to_json(),
        "data_type": s.value.data_type(),
        "comment": s.comment,
        "trace_id": e.trace_id,
        "span_id": e.span_id,
    })
}

pub fn events(rows: &[EventRow]) -> J {
    json!({ "events": rows.iter().map(event).collect::<Vec<_>>() })
}

/// The summary; with `scores`, each group also reports that score's count and mean.
pub fn summary(
    query: &SummaryQuery,
    groups: &[SummaryGroup],
    scores: Option<(&str, &[ScoreGroup])>,
) -> J {
    let groups: Vec<J> = groups
        .iter()
        .map(|g| {
            let mut row = json!({
                "key": { query.group_by.name(): g.key },
                "requests": g.requests,
                "errors": g.errors,
                "error_rate": g.error_rate(),
                "input_tokens": g.input_tokens,
                "output_tokens": g.output_tokens,
                "cache_read_tokens": g.cache_read_tokens,
                "cost_usd": g.cost_usd,
                "latency_ms": {
                    "p50": g.latency.p50_ms,
                    "p95": g.latency.p95_ms,
                    "p99": g.latency.p99_ms,
                },
            });
            if let Some(b) = g.bucket_start_ns {
                row["bucket_start"] = J::String(rfc3339(b));
            }
            if let Some((name, scores)) = scores {
                let found = scores
                    .iter()
                    .find(|s| s.key == g.key && s.bucket_start_ns == g.bucket_start_ns);
                row["score"] = json!({
                    "name": name,
                    "count": found.map_or(0, |s| s.count),
                    "mean": found.and_then(|s| s.mean),
                });
            }
            row
        })
        .collect();
    json!({"groups": groups})
}

pub(crate) fn anomaly(a: &AnomalyRow) -> J {
    json!({
        "time": rfc3339(a.time_ns),
        "kind": a.kind,
        "service": a.service,
        "provider": a.provider,
        "model": a.model,
        "operation": a.operation,
        "score": a.score,
        "value": a.value,
        "baseline": a.baseline,
        "trace_id": a.trace_id,
        "span_id": a.span_id,
        "message": a.message,
    })
}

pub fn anomalies(rows: &[AnomalyRow]) -> J {
    json!({ "anomalies": rows.iter().map(anomaly).collect::<Vec<_>>() })
}
