//! `debug`: writes what it receives to the collector's log, like the OpenTelemetry Collector's
//! `debug` exporter. `verbosity: basic` logs one line per export (signal and counts), `normal`
//! one line per span, log record or metric, `detailed` every resource, scope, attribute and
//! event as well. It never fails an export; what it logs is what the processors left (redacted).

use std::fmt::Write as _;

use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::metrics::v1::metric::Data;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, ExportError, Exporter, Payload, attr};
use serde::Deserialize;

use crate::factory::{BuildError, Built, ExporterFactory};

/// How much the `debug` exporter logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    /// One line per export: signal, item count, project.
    #[default]
    Basic,
    /// Also one line per span, log record or metric.
    Normal,
    /// Also every resource, scope, attribute and event.
    Detailed,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// `basic`, `normal` or `detailed`. Default: `basic`.
    pub verbosity: Verbosity,
}

/// Logs every batch at `info`, under the exporter's id.
#[derive(Debug, Clone)]
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

impl DebugExporter {
    pub fn new(id: &str, config: &DebugConfig) -> Self {
        Self {
            id: id.to_owned(),
            verbosity: config.verbosity,
        }
    }
}

impl Exporter for DebugExporter {
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        let text = render(batch, self.verbosity);
        tracing::info!(exporter = %self.id, "{text}");
        Ok(())
    }
}

/// Builds `debug` exporters.
pub struct Factory;

impl ExporterFactory for Factory {
    const TYPE: &'static str = "debug";
    type Config = DebugConfig;

    async fn build(
        id: &str,
        config: &DebugConfig,
        _telemetry: &Telemetry,
    ) -> Result<Built, BuildError> {
        Ok(Built::write_only(DebugExporter::new(id, config)))
    }
}

/// What the exporter logs for `batch`.
pub fn render(batch: &Batch, verbosity: Verbosity) -> String {
    let mut out = format!(
        "{}: {} items, project {}",
        batch.payload.signal(),
        batch.payload.item_count(),
        batch.ctx.project
    );
    let events: usize = batch
        .events
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    if events > 0 {
        let _ = write!(out, ", {events} derived events");
    }
    if verbosity == Verbosity::Basic {
        return out;
    }
    let detailed = verbosity == Verbosity::Detailed;
    match &batch.payload {
        Payload::Traces(resources) => {
            for r in resources {
                resource(
                    &mut out,
                    r.resource.as_ref().map(|r| &r.attributes[..]),
                    detailed,
                );
                for s in &r.scope_spans {
                    scope(
                        &mut out,
                        s.scope.as_ref().map(|s| s.name.as_str()),
                        detailed,
                    );
                    for span in &s.spans {
                        let ms = span
                            .end_time_unix_nano
                            .saturating_sub(span.start_time_unix_nano)
                            as f64
                            / 1e6;
                        let status = span.status.as_ref().map_or(0, |s| s.code);
                        let _ = write!(
                            out,
                            "\n  span {:?} trace {} span {} parent {} {ms:.3} ms status {status}",
                            span.name,
                            hex::encode(&span.trace_id),
                            hex::encode(&span.span_id),
                            hex::encode(&span.parent_span_id),
                        );
                        if detailed {
                            attributes(&mut out, "    ", &span.attributes);
                            for event in &span.events {
                                let _ = write!(out, "\n    event {:?}", event.name);
                                attributes(&mut out, "      ", &event.attributes);
                            }
                        }
                    }
                }
            }
        }
        Payload::Logs(resources) => {
            for r in resources {
                resource(
                    &mut out,
                    r.resource.as_ref().map(|r| &r.attributes[..]),
                    detailed,
                );
                for s in &r.scope_logs {
                    scope(
                        &mut out,
                        s.scope.as_ref().map(|s| s.name.as_str()),
                        detailed,
                    );
                    for record in &s.log_records {
                        let body = record.body.as_ref().map(attr::any_to_json);
                        let _ = write!(
                            out,
                            "\n  log {} {} trace {}",
                            record.severity_text,
                            body.map_or_else(String::new, |b| b.to_string()),
                            hex::encode(&record.trace_id),
                        );
                        if detailed {
                            attributes(&mut out, "    ", &record.attributes);
                        }
                    }
                }
            }
        }
        Payload::Metrics(resources) => {
            for r in resources {
                resource(
                    &mut out,
                    r.resource.as_ref().map(|r| &r.attributes[..]),
                    detailed,
                );
                for s in &r.scope_metrics {
                    scope(
                        &mut out,
                        s.scope.as_ref().map(|s| s.name.as_str()),
                        detailed,
                    );
                    for metric in &s.metrics {
                        let (kind, points) = match &metric.data {
                            Some(Data::Gauge(g)) => ("gauge", g.data_points.len()),
                            Some(Data::Sum(m)) => ("sum", m.data_points.len()),
                            Some(Data::Histogram(h)) => ("histogram", h.data_points.len()),
                            Some(Data::ExponentialHistogram(h)) => {
                                ("exponential histogram", h.data_points.len())
                            }
                            Some(Data::Summary(m)) => ("summary", m.data_points.len()),
                            None => ("empty", 0),
                        };
                        let _ = write!(
                            out,
                            "\n  metric {:?} {kind} {points} points {}",
                            metric.name, metric.unit
                        );
                    }
                }
            }
        }
    }
    out
}

fn resource(out: &mut String, attrs: Option<&[KeyValue]>, detailed: bool) {
    if detailed {
        out.push_str("\n resource");
        attributes(out, "   ", attrs.unwrap_or_default());
    }
}

fn scope(out: &mut String, name: Option<&str>, detailed: bool) {
    if detailed {
        let _ = write!(out, "\n scope {:?}", name.unwrap_or_default());
    }
}

fn attributes(out: &mut String, indent: &str, attrs: &[KeyValue]) {
    for kv in attrs {
        let value = kv
            .value
            .as_ref()
            .map_or(serde_json::Value::Null, attr::any_to_json);
        let _ = write!(out, "\n{indent}{} = {value}", kv.key);
    }
}

#[cfg(test)]
mod tests {
    use llmscope_core::test_util::{kv, span, traces};

    use super::*;

    fn batch() -> Batch {
        traces(
            "svc",
            vec![
                span(
                    1,
                    1,
                    "chat gpt-4o",
                    vec![kv("gen_ai.request.model", "gpt-4o")],
                ),
                span(1, 2, "tool", vec![]),
            ],
        )
    }

    #[test]
    fn basic_is_one_line_per_export() {
        let text = render(&batch(), Verbosity::Basic);
        assert_eq!(text, "traces: 2 items, project default");
    }

    #[test]
    fn normal_has_a_line_per_span_and_detailed_every_attribute() {
        let normal = render(&batch(), Verbosity::Normal);
        assert_eq!(normal.lines().count(), 3, "{normal}");
        assert!(
            normal.contains("span \"chat gpt-4o\" trace 0101"),
            "{normal}"
        );
        assert!(!normal.contains("gen_ai.request.model"));
        let detailed = render(&batch(), Verbosity::Detailed);
        assert!(
            detailed.contains("gen_ai.request.model = \"gpt-4o\""),
            "{detailed}"
        );
        assert!(detailed.contains("service.name = \"svc\""), "{detailed}");
    }
}
