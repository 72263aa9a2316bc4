//! `normalize`: every GenAI span leaves with the canonical attributes of the current OpenTelemetry
//! GenAI conventions, whichever family produced it: current and deprecated OTel GenAI names,
//! OpenInference, OpenLLMetry/Traceloop, the Vercel AI SDK and Langfuse.
//!
//! Guarantees:
//! - Original attributes are kept; canonical ones are added beside them. A canonical value the
//!   instrumentation already sent always wins over an alias.
//! - Token counts are inclusive (input includes cache reads and writes, output includes
//!   reasoning).
//! - Message content is canonical JSON (`[{"role", "parts": [...]}]`) on spans; GenAI log
//!   events get canonical structured content attributes so the store can join them to their span.
//! - Spans that are not GenAI pass through unchanged.

mod aliases;
mod config;
mod content;
mod join;
mod logs;
mod messages;
mod mlflow;
mod span;

use std::collections::HashMap;

use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::trace::v1::ResourceSpans;
use llmscope_core::semconv as sc;
use llmscope_core::{Batch, Payload, ProcessError, Processor, attr};

pub use config::NormalizeConfig;

/// Builds `normalize` processors (`processors.normalize[/name]`).
pub struct Factory;

impl llmscope_core::ProcessorFactory for Factory {
    const TYPE: &'static str = "normalize";
    type Config = NormalizeConfig;

    fn validate(config: &NormalizeConfig) -> Result<(), String> {
        config.validate()
    }

    fn build(
        config: &NormalizeConfig,
        _telemetry: &llmscope_core::telemetry::Telemetry,
    ) -> Result<Box<dyn Processor>, String> {
        Ok(Box::new(Normalize::new(config.clone())))
    }
}

/// The `normalize` processor.
#[derive(Debug, Default)]
pub struct Normalize {
    config: NormalizeConfig,
}

impl Normalize {
    pub fn new(config: NormalizeConfig) -> Self {
        Self { config }
    }
}

impl Processor for Normalize {
    fn process(&mut self, batch: &mut Batch) -> Result<(), ProcessError> {
        match &mut batch.payload {
            Payload::Traces(resource_spans) => {
                for rs in resource_spans.iter_mut() {
                    let mut any_genai = false;
                    for span in rs.scope_spans.iter_mut().flat_map(|s| s.spans.iter_mut()) {
                        any_genai |= span::normalize(&mut span.attributes);
                        span::name_from_message(span);
                    }
                    if any_genai {
                        join::join(rs);
                    }
                    if any_genai && self.config.propagate_trace_identity {
                        propagate_identity(rs);
                    }
                }
            }
            Payload::Logs(resource_logs) => {
                for record in resource_logs
                    .iter_mut()
                    .flat_map(|r| r.scope_logs.iter_mut())
                    .flat_map(|s| s.log_records.iter_mut())
                {
                    logs::normalize(record);
                }
            }
            Payload::Metrics(_) => {}
        }
        Ok(())
    }
}

/// Copies `session.id` and `user.id` from ancestors to GenAI descendants within one resource.
fn propagate_identity(rs: &mut ResourceSpans) {
    const KEYS: [&str; 2] = [sc::SESSION_ID, sc::USER_ID];
    let spans = || rs.scope_spans.iter().flat_map(|s| s.spans.iter());
    if !spans().any(|s| KEYS.iter().any(|k| attr::has(&s.attributes, k))) {
        return;
    }
    type Id<'a> = (&'a [u8], &'a [u8]);
    let parents: HashMap<Id, &[u8]> = spans()
        .map(|s| ((&s.trace_id[..], &s.span_id[..]), &s.parent_span_id[..]))
        .collect();
    let identity: HashMap<Id, Vec<KeyValue>> = spans()
        .filter_map(|s| {
            let kvs: Vec<KeyValue> = s
                .attributes
                .iter()
                .filter(|kv| KEYS.contains(&kv.key.as_str()))
                .cloned()
                .collect();
            (!kvs.is_empty()).then(|| ((&s.trace_id[..], &s.span_id[..]), kvs))
        })
        .collect();
    let mut found: HashMap<(Vec<u8>, Vec<u8>), Vec<KeyValue>> = HashMap::new();
    for span in spans().filter(|s| sc::is_genai(&s.attributes)) {
        let mut inherited = Vec::new();
        let mut parent = &span.parent_span_id[..];
        // Bounded walk: a malformed batch may contain a parent cycle.
        for _ in 0..64 {
            if parent.is_empty() {
                break;
            }
            let id = (&span.trace_id[..], parent);
            if let Some(kvs) = identity.get(&id) {
                for kv in kvs {
                    if !inherited.iter().any(|i: &KeyValue| i.key == kv.key) {
                        inherited.push(kv.clone());
                    }
                }
            }
            match parents.get(&id) {
                Some(p) => parent = p,
                None => break,
            }
        }
        if !inherited.is_empty() {
            found.insert((span.trace_id.clone(), span.span_id.clone()), inherited);
        }
    }
    for span in rs.scope_spans.iter_mut().flat_map(|s| s.spans.iter_mut()) {
        if let Some(kvs) = found.remove(&(span.trace_id.clone(), span.span_id.clone())) {
            for kv in kvs {
                if let Some(v) = kv.value.and_then(|v| v.value) {
                    attr::set_if_absent(&mut span.attributes, &kv.key, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
