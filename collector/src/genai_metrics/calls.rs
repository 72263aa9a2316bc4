//! What each stored model-call span contributes to the GenAI metrics, and the memory of recent
//! calls that makes a call reported by several spans (two instrumentations, a wrapper and its
//! client span, a client's retried export) count once, as the query API counts it.

use std::collections::{HashMap, VecDeque};

use llmscope_core::attr;
use llmscope_core::semconv as sc;
use llmscope_core::{Batch, Payload};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;

use super::series::push_value;

/// One model-call span, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The call's identity: its project and response id, else its trace and span ids.
    pub id: String,
    /// Operation, provider, request model, response model, service, then the configured
    /// dimensions, empty where unknown, as a series key.
    pub labels: String,
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
/// else its resource) after the base labels. Each span's attributes are read in one pass.
pub fn read(batch: &Batch, dimensions: &[String]) -> Vec<Call> {
    let Payload::Traces(resources) = &batch.payload else {
        return Vec::new();
    };
    let keys: Vec<&str> = BASE
        .iter()
        .copied()
        .chain(dimensions.iter().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for r in resources {
        let resource: &[KeyValue] = r.resource.as_ref().map_or(&[], |r| &r.attributes);
        let from_resource: Vec<Option<&Value>> =
            keys.iter().map(|k| attr::get(resource, k)).collect();
        for span in r.scope_spans.iter().flat_map(|s| &s.spans) {
            let mut f = Fields {
                labels: vec![None; keys.len()],
                ..Fields::default()
            };
            for kv in &span.attributes {
                if let Some(v) = kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    f.take(&kv.key, v, &keys);
                }
            }
            if !f.is_model_call() {
                continue;
            }
            let mut labels = String::with_capacity(64);
            for (own, inherited) in f.labels.iter().zip(&from_resource) {
                match own.or(*inherited) {
                    Some(Value::StringValue(s)) => push_value(&mut labels, s),
                    Some(other) => match attr::to_json(other) {
                        serde_json::Value::String(s) => push_value(&mut labels, &s),
                        json => push_value(&mut labels, &json.to_string()),
                    },
                    None => push_value(&mut labels, ""),
                }
            }
            let id = match f.response_id {
                Some(response) => format!("{}\u{0}r{response}", batch.ctx.project),
                None => format!(
                    "{}\u{0}s{}{}",
                    batch.ctx.project,
                    hex::encode(&span.trace_id),
                    hex::encode(&span.span_id)
                ),
            };
            let failed = span.status.as_ref().is_some_and(|s| s.code == 2);
            let error_type = failed.then(|| f.error_type.unwrap_or("_OTHER").into());
            let nanos = span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano);
            out.push(Call {
                id,
                labels,
                error_type,
                duration_s: nanos as f64 / 1e9,
                input: f.counts[0],
                output: f.counts[1],
                cache_read: f.counts[2],
                cache_write: f.counts[3],
                reasoning: f.counts[4],
                cost_usd: f.cost_usd,
            });
        }
    }
    out
}

/// What one pass over a span's attributes finds (the first value of each key, as
/// `attr::get` would).
#[derive(Default)]
struct Fields<'a> {
    /// The label keys' values, in key order.
    labels: Vec<Option<&'a Value>>,
    response_id: Option<&'a str>,
    error_type: Option<&'a str>,
    /// Input, output, cache read, cache write and reasoning tokens.
    counts: [Option<i64>; 5],
    cost_usd: Option<f64>,
    /// Fields already read, by bit.
    seen: u16,
}

const COUNTS: [&str; 5] = [
    sc::USAGE_INPUT_TOKENS,
    sc::USAGE_OUTPUT_TOKENS,
    sc::USAGE_CACHE_READ_INPUT_TOKENS,
    sc::USAGE_CACHE_CREATION_INPUT_TOKENS,
    sc::USAGE_REASONING_OUTPUT_TOKENS,
];

impl<'a> Fields<'a> {
    fn take(&mut self, key: &str, v: &'a Value, keys: &[&str]) {
        let non_empty = |v: &'a Value| match v {
            Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        };
        // A key may be both a label (a dimension) and a field.
        if let Some(i) = keys.iter().position(|k| *k == key) {
            self.labels[i].get_or_insert(v);
        }
        let field = match key {
            sc::RESPONSE_ID => 0,
            "error.type" => 1,
            sc::COST_TOTAL_USD => 2,
            _ => match COUNTS.iter().position(|k| *k == key) {
                Some(i) => 3 + i,
                None => return,
            },
        };
        if self.seen & (1 << field) != 0 {
            return;
        }
        self.seen |= 1 << field;
        match field {
            0 => self.response_id = non_empty(v),
            1 => self.error_type = non_empty(v),
            2 => {
                self.cost_usd = match v {
                    Value::DoubleValue(d) => Some(*d),
                    Value::IntValue(i) => Some(*i as f64),
                    Value::StringValue(s) => s.trim().parse().ok(),
                    _ => None,
                }
                .filter(|c: &f64| c.is_finite() && *c >= 0.0)
            }
            i => self.counts[i - 3] = attr::value_as_i64(v).filter(|n| *n >= 0),
        }
    }

    /// As `semconv::is_model_call`: a model-call operation, else a request or response model.
    fn is_model_call(&self) -> bool {
        let op = self.labels[0].and_then(|v| match v {
            Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        });
        match op {
            Some(op) => sc::MODEL_CALL_OPERATIONS.contains(&op),
            None => self.labels[2].is_some() || self.labels[3].is_some(),
        }
    }
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
