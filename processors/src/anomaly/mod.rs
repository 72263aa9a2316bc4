//! `anomaly`: streaming detection per series (project, service, provider, model, operation) of
//! latency, cost per call and output-token spikes, error-rate bursts over a sliding window, and
//! request-volume spikes and drops.
//!
//! Baselines adapt (EWMA of log values, warmed up on the first calls, clamped so one spike does
//! not move them); a cooldown makes one incident one anomaly. A detection marks its span
//! (`llmscope.anomaly.kind`, `.score`, `.value`, `.baseline`) and adds an anomaly event (an OTLP
//! log record, `event.name = llmscope.anomaly`) to the batch, stored with it. Memory is bounded:
//! at most `max_series` series, the least recently seen evicted and counted.

mod baseline;
mod config;
mod detector;

use llmscope_core::telemetry::metrics;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::common::v1::{AnyValue, KeyValue};
use llmscope_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use llmscope_core::otlp::resource::v1::Resource;
use llmscope_core::otlp::trace::v1::Span;
use llmscope_core::semconv as sc;
use llmscope_core::telemetry::{Counter, Telemetry};
use llmscope_core::{Batch, Payload, ProcessError, Processor, attr};

pub use config::AnomalyConfig;
pub use detector::{Detection, Detector, Kind, Observation, SeriesKey};

/// Builds `anomaly` processors (`processors.anomaly[/name]`).
pub struct Factory;

impl llmscope_core::ProcessorFactory for Factory {
    const TYPE: &'static str = "anomaly";
    /// Baselines must see every span of the pipeline: one instance for all its chains.
    const SHARED: bool = true;
    type Config = AnomalyConfig;

    fn validate(config: &AnomalyConfig) -> Result<(), String> {
        config.validate()
    }

    fn build(
        config: &AnomalyConfig,
        telemetry: &llmscope_core::telemetry::Telemetry,
    ) -> Result<Box<dyn Processor>, String> {
        Ok(Box::new(Anomaly::new(config.clone(), telemetry)))
    }
}

pub struct Anomaly {
    detector: Detector,
    detected: Vec<Counter>,
    evicted: Counter,
    evicted_seen: u64,
}

impl Anomaly {
    pub fn new(config: AnomalyConfig, telemetry: &Telemetry) -> Self {
        Self {
            detector: Detector::new(config),
            detected: Kind::ALL
                .iter()
                .map(|k| telemetry.counter(&metrics::ANOMALIES, &[("kind", k.name())]))
                .collect(),
            evicted: telemetry.counter(&metrics::ANOMALY_SERIES_EVICTED, &[]),
            evicted_seen: 0,
        }
    }
}

fn string(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(s.to_owned())),
    })
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn unit(kind: Kind) -> &'static str {
    match kind {
        Kind::Latency => " ms",
        Kind::Cost => " USD",
        Kind::OutputTokens => " tokens",
        Kind::ErrorRate => " error rate",
        Kind::VolumeSpike | Kind::VolumeDrop => " calls per bucket",
    }
}

/// The anomaly event for a detection.
fn event(key: &SeriesKey, d: &Detection, span: Option<&Span>) -> LogRecord {
    let observed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |t| t.as_nanos() as u64);
    let u = unit(d.kind);
    let body = format!(
        "{}: {:.4}{u} against a baseline of {:.4}{u} (score {:.1}) for {} {} in {}",
        d.kind.name(),
        d.value,
        d.baseline,
        d.score,
        key.provider,
        key.model,
        key.service
    );
    let mut attributes = vec![
        kv(sc::EVENT_NAME, Value::StringValue(sc::ANOMALY_EVENT.into())),
        kv(sc::ANOMALY_KIND, Value::StringValue(d.kind.name().into())),
        kv(sc::ANOMALY_SCORE, Value::DoubleValue(d.score)),
        kv(sc::ANOMALY_VALUE, Value::DoubleValue(d.value)),
        kv(sc::ANOMALY_BASELINE, Value::DoubleValue(d.baseline)),
    ];
    for (k, v) in [
        (sc::PROVIDER_NAME, &key.provider),
        (sc::REQUEST_MODEL, &key.model),
        (sc::OPERATION_NAME, &key.operation),
    ] {
        if !v.is_empty() {
            attributes.push(kv(k, Value::StringValue(v.clone())));
        }
    }
    LogRecord {
        time_unix_nano: u64::try_from(d.time_ns).unwrap_or(0),
        observed_time_unix_nano: observed,
        severity_number: 13,
        severity_text: "WARN".into(),
        event_name: sc::ANOMALY_EVENT.into(),
        body: string(&body),
        attributes,
        trace_id: span.map(|s| s.trace_id.clone()).unwrap_or_default(),
        span_id: span.map(|s| s.span_id.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

fn mark(span: &mut Span, d: &Detection) {
    let a = &mut span.attributes;
    attr::set(
        a,
        sc::ANOMALY_KIND,
        Value::StringValue(d.kind.name().into()),
    );
    attr::set(a, sc::ANOMALY_SCORE, Value::DoubleValue(d.score));
    attr::set(a, sc::ANOMALY_VALUE, Value::DoubleValue(d.value));
    attr::set(a, sc::ANOMALY_BASELINE, Value::DoubleValue(d.baseline));
}

fn nanos(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Processor for Anomaly {
    fn process(&mut self, batch: &mut Batch) -> Result<(), ProcessError> {
        let Payload::Traces(resource_spans) = &mut batch.payload else {
            return Ok(());
        };
        let project = batch.ctx.project.clone();
        let mut events: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
        let mut latest = i64::MIN;
        for rs in resource_spans.iter_mut() {
            let resource = rs
                .resource
                .as_ref()
                .map(|r| &r.attributes[..])
                .unwrap_or_default();
            let service = attr::get_str(resource, sc::SERVICE_NAME)
                .unwrap_or_default()
                .to_owned();
            for span in rs.scope_spans.iter_mut().flat_map(|s| s.spans.iter_mut()) {
                let a = &span.attributes;
                if !sc::is_model_call(a) {
                    continue;
                }
                let text = |k| attr::get_str(a, k).unwrap_or_default().to_owned();
                let key = SeriesKey {
                    project: project.clone(),
                    service: service.clone(),
                    provider: text(sc::PROVIDER_NAME),
                    model: attr::get_str(a, sc::REQUEST_MODEL)
                        .or_else(|| attr::get_str(a, sc::RESPONSE_MODEL))
                        .unwrap_or_default()
                        .to_owned(),
                    operation: text(sc::OPERATION_NAME),
                };
                let start = nanos(span.start_time_unix_nano);
                let observation = Observation {
                    time_ns: start,
                    latency_ms: span
                        .end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano)
                        as f64
                        / 1e6,
                    cost_usd: attr::get_f64(a, sc::COST_TOTAL_USD),
                    output_tokens: attr::get_i64(a, sc::USAGE_OUTPUT_TOKENS),
                    error: span.status.as_ref().is_some_and(|s| s.code == 2),
                };
                latest = latest.max(start);
                let found = self.detector.observe(&key, observation);
                let strongest = found
                    .iter()
                    .filter(|d| !matches!(d.kind, Kind::VolumeSpike | Kind::VolumeDrop))
                    .max_by(|x, y| x.score.total_cmp(&y.score));
                if let Some(d) = strongest {
                    mark(span, d);
                }
                for d in &found {
                    self.detected[d.kind as usize].add(1);
                    let on_span = !matches!(d.kind, Kind::VolumeSpike | Kind::VolumeDrop);
                    events.entry(service.clone()).or_default().push(event(
                        &key,
                        d,
                        on_span.then_some(&*span),
                    ));
                }
            }
        }
        if latest > i64::MIN {
            for (key, d) in self.detector.sweep(latest) {
                self.detected[d.kind as usize].add(1);
                events
                    .entry(key.service.clone())
                    .or_default()
                    .push(event(&key, &d, None));
            }
        }
        if self.detector.evicted > self.evicted_seen {
            self.evicted.add(self.detector.evicted - self.evicted_seen);
            self.evicted_seen = self.detector.evicted;
        }
        for (service, log_records) in events {
            batch.events.push(ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: sc::SERVICE_NAME.into(),
                        value: string(&service),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                schema_url: String::new(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
