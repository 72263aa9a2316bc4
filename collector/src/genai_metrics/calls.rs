//! What each stored model-call span contributes to the GenAI metrics, and the memory of recent
//! calls that makes a call reported by several spans (two instrumentations, a wrapper and its
//! client span, a client's retried export) count once, as the query API counts it.

use std::collections::{HashMap, VecDeque};

use llmscope_core::attr;
use llmscope_core::semconv as sc;
use llmscope_core::{Batch, Payload};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use super::series::Key;

/// One model-call span, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The call's identity: its project and response id, else its trace and span ids.
    pub id: String,
    /// Operation, provider, request model, response model, service, then the configured
    /// dimensions, empty where unknown.
    pub labels: Key,
    /// `error.type` of a failed call (`_OTHER` when the span says only that it failed).
    pub error_type: Option<Box<str>>,
    pub duration_s: f64,
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub cache_read: Option<i64>,
    pub cache_write: Option<i64>,
    pub reasoning: Option<i64>,
    pub cost_usd: Option<f64>,
}

/// The base labels' attribute keys, in key order.
pub const BASE: [&str; 5] = [
    sc::OPERATION_NAME,
    sc::PROVIDER_NAME,
    sc::REQUEST_MODEL,
    sc::RESPONSE_MODEL,
    sc::SERVICE_NAME,
];

/// The model calls of a processed batch, with `dimensions` (attribute keys, read from the span,
/// else its resource) after the base labels.
pub fn read(batch: &Batch, dimensions: &[String]) -> Vec<Call> {
    let Payload::Traces(resources) = &batch.payload else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in resources {
        let resource: &[KeyValue] = r.resource.as_ref().map_or(&[], |r| &r.attributes);
        for span in r.scope_spans.iter().flat_map(|s| &s.spans) {
            let a = &span.attributes;
            if !sc::is_model_call(a) {
                continue;
            }
            let label = |key: &str| -> Box<str> {
                let value = attr::get(a, key).or_else(|| attr::get(resource, key));
                match value {
                    Some(Value::StringValue(s)) => s.as_str().into(),
                    Some(other) => match attr::to_json(other) {
                        serde_json::Value::String(s) => s.into(),
                        json => json.to_string().into(),
                    },
                    None => "".into(),
                }
            };
            let labels = BASE
                .iter()
                .copied()
                .chain(dimensions.iter().map(String::as_str))
                .map(label)
                .collect();
            let id = match attr::get_str(a, sc::RESPONSE_ID) {
                Some(response) => format!("{}\u{0}r{response}", batch.ctx.project),
                None => format!(
                    "{}\u{0}s{}{}",
                    batch.ctx.project,
                    hex::encode(&span.trace_id),
                    hex::encode(&span.span_id)
                ),
            };
            let failed = span.status.as_ref().is_some_and(|s| s.code == 2);
            let error_type = failed.then(|| {
                attr::get_str(a, "error.type")
                    .unwrap_or("_OTHER")
                    .to_owned()
                    .into_boxed_str()
            });
            let nanos = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano);
            let count = |key| attr::get_i64(a, key).filter(|n| *n >= 0);
            out.push(Call {
                id,
                labels,
                error_type,
                duration_s: nanos as f64 / 1e9,
                input: count(sc::USAGE_INPUT_TOKENS),
                output: count(sc::USAGE_OUTPUT_TOKENS),
                cache_read: count(sc::USAGE_CACHE_READ_INPUT_TOKENS),
                cache_write: count(sc::USAGE_CACHE_CREATION_INPUT_TOKENS),
                reasoning: count(sc::USAGE_REASONING_OUTPUT_TOKENS),
                cost_usd: attr::get_f64(a, sc::COST_TOTAL_USD)
                    .filter(|c| c.is_finite() && *c >= 0.0),
            });
        }
    }
    out
}

/// What has been counted of one call so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counted {
    pub input: Option<i64>,
    pub output: Option<i64>,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
    pub cost_usd: f64,
}

/// The last `capacity` calls seen, by id; the oldest is forgotten first.
#[derive(Debug)]
pub struct Recent {
    capacity: usize,
    calls: HashMap<String, Counted, foldhash::fast::RandomState>,
    order: VecDeque<String>,
}

impl Recent {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            calls: HashMap::default(),
            order: VecDeque::new(),
        }
    }

    /// What was counted of call `id`, and whether it is new.
    pub fn entry(&mut self, id: &str) -> (&mut Counted, bool) {
        let new = !self.calls.contains_key(id);
        if new {
            if self.order.len() >= self.capacity
                && let Some(old) = self.order.pop_front()
            {
                self.calls.remove(&old);
            }
            self.order.push_back(id.to_owned());
            self.calls.insert(id.to_owned(), Counted::default());
        }
        let counted = self.calls.get_mut(id).expect("inserted above");
        (counted, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_call_is_forgotten_first() {
        let mut r = Recent::new(2);
        assert!(r.entry("a").1);
        r.entry("a").0.cache_read = 5;
        assert!(r.entry("b").1);
        assert!(!r.entry("a").1);
        assert_eq!(r.entry("a").0.cache_read, 5);
        assert!(r.entry("c").1);
        assert!(r.entry("a").1, "a was the oldest");
        assert_eq!(r.entry("a").0.cache_read, 0);
    }
}
