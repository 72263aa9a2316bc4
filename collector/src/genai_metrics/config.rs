//! `service.telemetry.metrics.gen_ai`: which pipelines are counted, which extra dimensions the
//! series carry, how many series a metric may hold, and where OTLP copies go.

use std::time::Duration;

use serde::Deserialize;

use crate::config::{Problem, Signal, join};

/// Settings of the GenAI usage metrics. Every field has a default; the metrics are on unless
/// `enabled: false`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenAiMetricsConfig {
    /// Default: `true`.
    pub enabled: bool,
    /// The traces pipelines whose stored spans are counted. Default: those exporting to a store
    /// an `api` extension reads (what the API counts), else every traces pipeline.
    pub pipelines: Option<Vec<String>>,
    /// Span (else resource) attributes added as labels, e.g. `user.id`, `session.id`,
    /// `gen_ai.conversation.id`; `user` and `session` are short for the first two. Each can
    /// multiply the series count: `series_limit` bounds it. Default: none.
    pub dimensions: Vec<String>,
    /// Label sets each metric holds at most; past it, observations with a new label set go to
    /// the overflow series. Default: 2000 (the OpenTelemetry SDKs' cardinality limit).
    pub series_limit: usize,
    /// How many recent calls are remembered so a call reported by several spans counts once.
    /// Default: 65536.
    pub remembered_calls: usize,
    pub export: ExportConfig,
}

/// OTLP copies of the metrics, sent into metrics pipelines.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportConfig {
    /// Metrics pipelines fed the metrics (cumulative) every `interval`, e.g. one whose
    /// exporter is `otlp`. Such a pipeline needs no receivers. Default: none.
    pub pipelines: Vec<String>,
    /// Default: `60s`; at least `1s`.
    #[serde(with = "llmscope_core::config::duration")]
    pub interval: Duration,
}

impl Default for GenAiMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            pipelines: None,
            dimensions: Vec::new(),
            series_limit: 2000,
            remembered_calls: 65536,
            export: ExportConfig::default(),
        }
    }
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            pipelines: Vec::new(),
            interval: Duration::from_secs(60),
        }
    }
}

/// Labels every series has; a dimension may not take one of their names.
const BASE_LABELS: [&str; 7] = [
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
    "service_name",
    "gen_ai_token_type",
    "error_type",
];

impl GenAiMetricsConfig {
    /// The dimensions as attribute keys.
    pub fn attribute_keys(&self) -> Vec<String> {
        self.dimensions
            .iter()
            .map(|d| match d.as_str() {
                "user" => "user.id".to_owned(),
                "session" => "session.id".to_owned(),
                other => other.to_owned(),
            })
            .collect()
    }

    /// Problems with these settings, given the pipelines defined (id to signal); `path` is
    /// where they are in the config.
    pub fn check(&self, path: &str, pipelines: &[(&str, Signal)], problems: &mut Vec<Problem>) {
        if self.series_limit == 0 {
            problems.push(Problem::new(
                &join(path, "series_limit"),
                "must be at least 1",
            ));
        }
        if self.remembered_calls == 0 {
            problems.push(Problem::new(
                &join(path, "remembered_calls"),
                "must be at least 1",
            ));
        }
        if self.export.interval < Duration::from_secs(1) {
            problems.push(Problem::new(
                &join(path, "export.interval"),
                "must be at least 1s",
            ));
        }
        let mut labels: Vec<String> = BASE_LABELS.iter().map(|l| (*l).to_owned()).collect();
        for (i, key) in self.attribute_keys().iter().enumerate() {
            let at = format!("{}[{i}]", join(path, "dimensions"));
            let label = super::prometheus_label(key);
            if key.is_empty() {
                problems.push(Problem::new(&at, "an attribute key is required"));
            } else if labels.contains(&label) {
                problems.push(Problem::new(
                    &at,
                    format!("{key:?} would be the label {label:?}, which the series already have"),
                ));
            } else {
                labels.push(label);
            }
        }
        let signal_of = |id: &str| pipelines.iter().find(|(p, _)| *p == id).map(|(_, s)| *s);
        let lists = [
            (
                "pipelines",
                self.pipelines.as_deref().unwrap_or(&[]),
                Signal::Traces,
            ),
            ("export.pipelines", &self.export.pipelines, Signal::Metrics),
        ];
        for (field, ids, wanted) in lists {
            for (i, id) in ids.iter().enumerate() {
                let at = format!("{}[{i}]", join(path, field));
                match signal_of(id) {
                    None => problems.push(Problem::new(
                        &at,
                        format!("{id:?} is not defined under service.pipelines"),
                    )),
                    Some(s) if s != wanted => problems.push(Problem::new(
                        &at,
                        format!("{id:?} is not a {} pipeline", signal_name(wanted)),
                    )),
                    Some(_) => {}
                }
            }
        }
    }
}

fn signal_name(s: Signal) -> &'static str {
    match s {
        Signal::Traces => "traces",
        Signal::Logs => "logs",
        Signal::Metrics => "metrics",
    }
}
