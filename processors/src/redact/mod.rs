//! `redact`: PII and secrets removed before anything is stored.
//!
//! Detectors: email, phone numbers, credit cards (Luhn-checked), US SSN, IBAN (checksum-checked),
//! IPv4 and IPv6, LLMScope (`lls_`), OpenAI and Anthropic API keys, AWS access keys, GitHub
//! tokens, JWTs, PEM private keys, `password=`/`api_key=`-style assignments, and user-defined
//! patterns. Each is masked
//! (`[REDACTED:EMAIL]`), hashed (`[EMAIL:hash]`, keyed HMAC-SHA256) or dropped (the attribute
//! goes); an allow-list keeps values as they are.
//!
//! Scope (`scan: all`, the default): every string attribute value of every span, span event, log
//! record, resource and instrumentation scope, span names, and log bodies, except keys that are never
//! content ([`scope::NEVER_CONTENT`]: ids, model names, enums), skipped for speed. `scan:
//! listed` narrows it to the GenAI content attributes and their aliases; keys and globs from
//! config widen or narrow either. JSON-valued strings and structured values are redacted inside
//! their string leaves and keep their shape.
//!
//! Guarantees: `llmscope.pii.types` on the span or record lists what was found, and each type is
//! counted; redacting twice changes nothing; a value that cannot be processed (bytes, a
//! structure nested too deep) is replaced by `[REDACTED:UNPROCESSABLE]`, never passed through.

mod config;
#[cfg(test)]
mod corpus;
mod detectors;
mod scanner;
pub mod scope;
mod starts;
mod stream;
mod value;

use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::common::v1::{AnyValue, ArrayValue, KeyValue};
use llmscope_core::semconv as sc;
use llmscope_core::telemetry::metrics;
use llmscope_core::telemetry::{Counter, Telemetry};
use llmscope_core::{Batch, Payload, ProcessError, Processor, attr};

pub use config::{Action, Pattern, RedactConfig, Scan, Terms};
pub use detectors::BUILTINS;
pub use detectors::{DEFAULT_PHONE_REGIONS, Validator};
pub use scanner::Scanner;
pub use scope::{NEVER_CONTENT, Scope};
use value::{Unprocessable, Verdict};

/// Builds `redact` processors (`processors.redact[/name]`).
pub struct Factory;

impl llmscope_core::ProcessorFactory for Factory {
    const TYPE: &'static str = "redact";
    type Config = RedactConfig;

    fn validate(config: &RedactConfig) -> Result<(), String> {
        config.validate()
    }

    fn build(
        config: &RedactConfig,
        telemetry: &llmscope_core::telemetry::Telemetry,
    ) -> Result<Box<dyn Processor>, String> {
        Ok(Box::new(Redact::new(config, telemetry)?))
    }
}

/// What replaces a value that could not be processed.
pub const UNPROCESSABLE: &str = "[REDACTED:UNPROCESSABLE]";

pub struct Redact {
    scanner: Scanner,
    scope: Scope,
    log_bodies: bool,
    detections: Vec<Counter>,
    unprocessable: Counter,
}

impl Redact {
    pub fn new(config: &RedactConfig, telemetry: &Telemetry) -> Result<Self, String> {
        let scanner = Scanner::new(config)?;
        let detections = scanner
            .detectors
            .iter()
            .map(|d| telemetry.counter(&metrics::REDACT_DETECTIONS, &[("type", &d.name)]))
            .collect();
        Ok(Self {
            scanner,
            scope: Scope::new(
                config.scan == Scan::All,
                config.default_attributes,
                &config.attributes,
                &config.skip_attributes,
            ),
            log_bodies: config.log_bodies,
            detections,
            unprocessable: telemetry.counter(&metrics::REDACT_UNPROCESSABLE, &[]),
        })
    }

    /// Redacts the in-scope attributes; returns what was found and whether anything could not
    /// be processed.
    fn attributes(&self, attrs: &mut Vec<KeyValue>) -> (u64, bool) {
        let mut found = 0;
        let mut failed = false;
        attrs.retain_mut(|kv| {
            if !self.scope.contains(&kv.key) {
                return true;
            }
            let Some(value) = kv.value.as_mut().and_then(|v| v.value.as_mut()) else {
                return true;
            };
            self.value(value, &mut found, &mut failed) != Verdict::Drop
        });
        (found, failed)
    }

    fn value(&self, value: &mut Value, found: &mut u64, failed: &mut bool) -> Verdict {
        match value::redact_value(&self.scanner, value, found, 0) {
            Ok(v) => v,
            Err(Unprocessable) => {
                *value = Value::StringValue(UNPROCESSABLE.to_owned());
                *failed = true;
                self.unprocessable.add(1);
                Verdict::Changed
            }
        }
    }

    /// Redacts a span's name (a name may be filled from a message, as Logfire's are); a name a
    /// `drop` detector matched becomes `[REDACTED]`. Returns what was found.
    fn name(&self, name: &mut String) -> u64 {
        let outcome = self.scanner.redact(name);
        if outcome.drop {
            *name = "[REDACTED]".to_owned();
        } else if let Some(text) = outcome.text {
            *name = text;
        }
        outcome.found
    }

    /// Redacts a resource's or scope's attributes, recording what was found among them.
    fn own(&self, attrs: Option<&mut Vec<KeyValue>>) {
        if let Some(attrs) = attrs {
            let (found, failed) = self.attributes(attrs);
            self.record(attrs, found, failed);
        }
    }

    /// Counts and records the types found on the span's or record's own attributes.
    fn record(&self, attrs: &mut Vec<KeyValue>, found: u64, failed: bool) {
        if found == 0 && !failed {
            return;
        }
        for (i, counter) in self.detections.iter().enumerate() {
            if found & (1 << i) != 0 {
                counter.add(1);
            }
        }
        let mut types: Vec<String> = match attr::get(attrs, sc::PII_TYPES) {
            Some(Value::ArrayValue(a)) => a
                .values
                .iter()
                .filter_map(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        types.extend(self.scanner.names(found).map(str::to_owned));
        if failed {
            types.push("unprocessable".into());
        }
        types.sort();
        types.dedup();
        let values = types
            .into_iter()
            .map(|t| AnyValue {
                value: Some(Value::StringValue(t)),
            })
            .collect();
        attr::set(
            attrs,
            sc::PII_TYPES,
            Value::ArrayValue(ArrayValue { values }),
        );
    }
}

impl Processor for Redact {
    fn process(&mut self, batch: &mut Batch) -> Result<(), ProcessError> {
        match &mut batch.payload {
            Payload::Traces(resource_spans) => {
                for r in resource_spans.iter_mut() {
                    self.own(r.resource.as_mut().map(|r| &mut r.attributes));
                    for s in &mut r.scope_spans {
                        self.own(s.scope.as_mut().map(|s| &mut s.attributes));
                    }
                }
                for span in resource_spans
                    .iter_mut()
                    .flat_map(|r| r.scope_spans.iter_mut())
                    .flat_map(|s| s.spans.iter_mut())
                {
                    let (mut found, mut failed) = self.attributes(&mut span.attributes);
                    found |= self.name(&mut span.name);
                    found |= stream::redact(&self.scanner, &mut span.events);
                    for event in &mut span.events {
                        let (f, x) = self.attributes(&mut event.attributes);
                        found |= f;
                        failed |= x;
                    }
                    self.record(&mut span.attributes, found, failed);
                }
            }
            Payload::Logs(resource_logs) => {
                for r in resource_logs.iter_mut() {
                    self.own(r.resource.as_mut().map(|r| &mut r.attributes));
                    for s in &mut r.scope_logs {
                        self.own(s.scope.as_mut().map(|s| &mut s.attributes));
                    }
                }
                for record in resource_logs
                    .iter_mut()
                    .flat_map(|r| r.scope_logs.iter_mut())
                    .flat_map(|s| s.log_records.iter_mut())
                {
                    let (mut found, mut failed) = self.attributes(&mut record.attributes);
                    if self.log_bodies
                        && let Some(body) = record.body.as_mut().and_then(|b| b.value.as_mut())
                        && self.value(body, &mut found, &mut failed) == Verdict::Drop
                    {
                        record.body = None;
                    }
                    self.record(&mut record.attributes, found, failed);
                }
            }
            Payload::Metrics(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
