//! The config file: the OpenTelemetry Collector's YAML shape (`receivers`, `processors`,
//! `exporters`, `extensions`, `service.pipelines`, ids written `type[/name]`) with
//! `${env:VAR}` expansion. Loading checks everything and reports every problem at once, each
//! with the path of the offending key.

mod env;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::api::ApiConfig;
use crate::auth::{AuthConfig, AuthMode};
use crate::receiver::OtlpReceiverConfig;
use crate::registry::Registry;
pub use crate::registry::{ExporterConfig, ProcessorConfig};
use llmscope_exporters::factory::Offers;

/// The built-in default: `otel-config/default.yaml`, compiled in.
pub const DEFAULT_CONFIG: &str = include_str!("../../../otel-config/default.yaml");

/// One thing wrong with a config, at a path such as `receivers.otlp.protocols.grpc.endpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: &str, message: impl Into<String>) -> Self {
        Self {
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path.to_owned()
            },
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} has {n} problem{}:",
            self.source_name,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The signals a pipeline carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    Traces,
    Logs,
    Metrics,
}

impl Signal {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "traces" => Some(Self::Traces),
            "logs" => Some(Self::Logs),
            "metrics" => Some(Self::Metrics),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverConfig {
    Otlp(OtlpReceiverConfig),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExtensionConfig {
    Api(ApiConfig),
    Auth(AuthConfig),
    Alerts(crate::alerts::AlertsConfig),
}

/// A pipeline: receivers feed processors in order, which feed every exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// At least one, except for a metrics pipeline the GenAI metrics are exported into.
    #[serde(default)]
    pub receivers: Vec<String>,
    #[serde(default)]
    pub processors: Vec<String>,
    pub exporters: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    pub logs: LogsTelemetry,
    pub metrics: MetricsTelemetry,
}

/// `service.telemetry.metrics`: what `/metrics` (and OTLP copies) report beyond the
/// collector's own counters.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsTelemetry {
    /// The GenAI usage metrics (`crate::genai_metrics`).
    pub gen_ai: crate::genai_metrics::GenAiMetricsConfig,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsTelemetry {
    /// Log filter (`error`, `warn`, `info`, `debug`, or a `tracing` filter directive);
    /// `RUST_LOG` overrides it. Default: `info`.
    pub level: String,
}

impl Default for LogsTelemetry {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawService {
    pipelines: BTreeMap<String, PipelineConfig>,
    extensions: Vec<String>,
    telemetry: TelemetryConfig,
    queue: crate::queue::QueueConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    receivers: Option<Mapping>,
    processors: Option<Mapping>,
    exporters: Option<Mapping>,
    extensions: Option<Mapping>,
    service: Option<Value>,
}

/// A checked config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub receivers: BTreeMap<String, ReceiverConfig>,
    pub processors: BTreeMap<String, ProcessorConfig>,
    pub exporters: BTreeMap<String, ExporterConfig>,
    pub extensions: BTreeMap<String, ExtensionConfig>,
    /// Pipelines by id (`traces`, `logs/content`, ...) with their signal.
    pub pipelines: BTreeMap<String, (Signal, PipelineConfig)>,
    /// Extensions that run, in order.
    pub service_extensions: Vec<String>,
    pub telemetry: TelemetryConfig,
    /// Where processed batches wait for the exporters.
    pub queue: crate::queue::QueueConfig,
    /// Each exporter's own `retry_on_failure` and `sending_queue`.
    pub delivery: BTreeMap<String, crate::queue::DeliveryConfig>,
}

impl Config {
    /// How the exporter `id` is fed: the queue's settings with the exporter's own.
    pub fn delivery_of(&self, id: &str) -> crate::driver::Delivery {
        self.queue
            .delivery(&self.delivery.get(id).cloned().unwrap_or_default())
    }

    /// Reads and checks a config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: vec![Problem::new("", format!("cannot read the file: {e}"))],
        })?;
        Self::parse(&name, &text, &|var| std::env::var(var).ok())
    }

    /// The built-in default.
    pub fn default_config() -> Result<Self, ConfigError> {
        Self::parse("built-in default config", DEFAULT_CONFIG, &|var| {
            std::env::var(var).ok()
        })
    }

    /// Parses and checks config text with the built-in component types; `lookup` resolves
    /// `${env:VAR}`.
    pub fn parse(
        source_name: &str,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::parse_in(&Registry::default(), source_name, text, lookup)
    }

    /// Parses and checks config text whose processors and exporters are types of `registry`.
    pub fn parse_in(
        registry: &Registry,
        source_name: &str,
        text: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let fail = |problems| ConfigError {
            source_name: source_name.to_owned(),
            problems,
        };
        let mut value: Value = serde_yaml::from_str(text)
            .map_err(|e| fail(vec![Problem::new(&yaml_location(&e), e.to_string())]))?;
        if value.is_null() {
            value = Value::Mapping(Mapping::new());
        }
        let mut problems = Vec::new();
        env::expand(&mut value, "", lookup, &mut problems);
        let raw: RawConfig = match from_value(value, "", &mut problems) {
            Some(raw) => raw,
            None => return Err(fail(problems)),
        };
        // Ids defined in each section, valid or not: a pipeline naming an invalid component is
        // not a second problem.
        let ids = |m: &Option<Mapping>| -> Vec<String> {
            m.iter()
                .flatten()
                .filter_map(|(k, _)| k.as_str().map(str::to_owned))
                .collect()
        };
        let defined = [
            ids(&raw.receivers),
            ids(&raw.processors),
            ids(&raw.exporters),
            ids(&raw.extensions),
        ];
        let receivers = components(
            raw.receivers,
            "receivers",
            &mut problems,
            |kind, v, p, pr| match kind {
                "otlp" => checked(v, p, pr, OtlpReceiverConfig::validate).map(ReceiverConfig::Otlp),
                _ => unknown_type(p, pr, "receiver", kind, &["otlp"]),
            },
        );
        let processors = components(
            raw.processors,
            "processors",
            &mut problems,
            |kind, v, p, pr| match registry.processor(kind) {
                Some(k) => k.parse(v, p, pr).map(|s| ProcessorConfig::new(k, s)),
                None => unknown_type(p, pr, "processor", kind, &registry.processor_types()),
            },
        );
        let exporters = components(
            raw.exporters,
            "exporters",
            &mut problems,
            |kind, mut v, p, pr| {
                let delivery = take_delivery(&mut v, p, pr);
                let exporter = match registry.exporter(kind) {
                    Some(k) => k.parse(v, p, pr).map(|s| ExporterConfig::new(k, s)),
                    None => unknown_type(p, pr, "exporter", kind, &registry.exporter_types()),
                };
                Some((exporter?, delivery?))
            },
        );
        let (exporters, delivery) = exporters
            .into_iter()
            .map(|(id, (exporter, delivery))| ((id.clone(), exporter), (id, delivery)))
            .unzip();
        let extensions = components(
            raw.extensions,
            "extensions",
            &mut problems,
            |kind, v, p, pr| match kind {
                "api" => checked(v, p, pr, ApiConfig::validate).map(ExtensionConfig::Api),
                "auth" => checked(v, p, pr, AuthConfig::validate).map(ExtensionConfig::Auth),
                "alerts" => checked(v, p, pr, crate::alerts::AlertsConfig::validate)
                    .map(ExtensionConfig::Alerts),
                _ => unknown_type(p, pr, "extension", kind, &["alerts", "api", "auth"]),
            },
        );
        let service_given = raw.service.is_some();
        let service: Option<RawService> = raw
            .service
            .and_then(|v| from_value(v, "service", &mut problems));
        // A `service` that did not parse has its problem reported; its pipelines are not
        // missing.
        let service_broken = service_given && service.is_none();
        let service = service.unwrap_or_default();

        let mut config = Config {
            receivers,
            processors,
            exporters,
            extensions,
            pipelines: BTreeMap::new(),
            service_extensions: service.extensions,
            telemetry: service.telemetry,
            queue: service.queue,
            delivery,
        };
        if let Err(message) = config.queue.validate() {
            problems.push(field_problem("service.queue", &message));
        }
        for (id, own) in &config.delivery {
            let retry = config.queue.retry.overridden(&own.retry_on_failure);
            // A problem the global settings have is reported once, there.
            if config.queue.retry.validate().is_ok()
                && let Err(message) = retry.validate()
            {
                let path = format!("exporters.{id}.retry_on_failure");
                problems.push(field_problem(&path, &message));
            }
        }
        config.check_service(service.pipelines, &defined, service_broken, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(fail(problems))
        }
    }

    fn check_service(
        &mut self,
        pipelines: BTreeMap<String, PipelineConfig>,
        [receivers, processors, exporters, extensions]: &[Vec<String>; 4],
        service_broken: bool,
        problems: &mut Vec<Problem>,
    ) {
        if pipelines.is_empty() && !service_broken {
            problems.push(Problem::new(
                "service.pipelines",
                "at least one pipeline is required",
            ));
        }
        for (id, pipeline) in pipelines {
            let path = format!("service.pipelines.{id}");
            let signal_name = id.split_once('/').map_or(id.as_str(), |(s, _)| s);
            let Some(signal) = Signal::parse(signal_name) else {
                problems.push(Problem::new(
                    &path,
                    format!("unknown signal {signal_name:?}; pipelines are traces, logs or metrics (optionally traces/NAME)"),
                ));
                continue;
            };
            for (kind, names, known) in [
                ("receivers", &pipeline.receivers, receivers),
                ("processors", &pipeline.processors, processors),
                ("exporters", &pipeline.exporters, exporters),
            ] {
                let fed_by_metrics = kind == "receivers"
                    && self.telemetry.metrics.gen_ai.export.pipelines.contains(&id);
                if kind != "processors" && names.is_empty() && !fed_by_metrics {
                    problems.push(Problem::new(
                        &format!("{path}.{kind}"),
                        format!("a pipeline needs at least one of its {kind}"),
                    ));
                }
                for (i, name) in names.iter().enumerate() {
                    if !known.contains(name) {
                        problems.push(Problem::new(
                            &format!("{path}.{kind}[{i}]"),
                            format!("{name:?} is not defined under {kind}"),
                        ));
                    } else if names[..i].contains(name) {
                        problems.push(Problem::new(
                            &format!("{path}.{kind}[{i}]"),
                            format!("{name:?} is listed twice"),
                        ));
                    }
                }
            }
            self.pipelines.insert(id, (signal, pipeline));
        }
        let defined: Vec<(&str, Signal)> = self
            .pipelines
            .iter()
            .map(|(id, (signal, _))| (id.as_str(), *signal))
            .collect();
        self.telemetry
            .metrics
            .gen_ai
            .check("service.telemetry.metrics.gen_ai", &defined, problems);
        for (i, name) in self.service_extensions.iter().enumerate() {
            if !extensions.contains(name) {
                problems.push(Problem::new(
                    &format!("service.extensions[{i}]"),
                    format!("{name:?} is not defined under extensions"),
                ));
            }
        }
        const QUERIES: &str = "answers no queries (it is write-only); use a store such as sqlite, postgres or clickhouse";
        const METADATA: &str = "cannot hold keys or rules; use a sqlite or postgres exporter";
        type StoreUse<'a> = (&'a str, &'static str, &'static str, fn(Offers) -> bool);
        for (id, ext) in &self.extensions {
            let uses: Vec<StoreUse<'_>> = match ext {
                ExtensionConfig::Api(api) => vec![(&api.store, "store", QUERIES, |o| o.query)],
                ExtensionConfig::Auth(auth) => match auth.store() {
                    Some(store) => vec![(store, "store", METADATA, |o| o.metadata)],
                    None => Vec::new(),
                },
                ExtensionConfig::Alerts(alerts) => vec![
                    (&alerts.store, "store", METADATA, |o| o.metadata),
                    (&alerts.query_store, "query_store", QUERIES, |o| o.query),
                ],
            };
            for (store, field, needs, offered) in uses {
                let path = format!("extensions.{id}.{field}");
                match self.exporters.get(store) {
                    Some(exporter) if !offered(exporter.offers()) => {
                        problems.push(Problem::new(&path, format!("{store:?} {needs}")));
                    }
                    None if !exporters.iter().any(|e| e == store) => problems.push(Problem::new(
                        &path,
                        format!("{store:?} is not defined under exporters"),
                    )),
                    _ => {}
                }
            }
        }
        self.check_exposure(problems);
    }

    /// The auth extension in effect, if `service.extensions` runs one with `mode: api_key`.
    pub fn auth(&self) -> Option<(&String, &AuthConfig)> {
        self.service_extensions
            .iter()
            .find_map(|id| match self.extensions.get(id) {
                Some(ExtensionConfig::Auth(a)) if a.mode == AuthMode::ApiKey => Some((id, a)),
                _ => None,
            })
    }

    /// The `api` extensions that run.
    pub fn apis(&self) -> Vec<(&String, &ApiConfig)> {
        self.service_extensions
            .iter()
            .filter_map(|id| match self.extensions.get(id) {
                Some(ExtensionConfig::Api(a)) => Some((id, a)),
                _ => None,
            })
            .collect()
    }

    /// The stores the running `api` extensions read.
    pub fn api_stores(&self) -> std::collections::BTreeSet<String> {
        self.apis()
            .into_iter()
            .map(|(_, a)| a.store.clone())
            .collect()
    }

    /// The traces pipelines the GenAI metrics count, none when they are off or have nowhere to
    /// go (no `api` serving `/metrics` and no export pipeline).
    pub fn gen_ai_metric_pipelines(&self) -> std::collections::BTreeSet<String> {
        let g = &self.telemetry.metrics.gen_ai;
        if !g.enabled || (self.apis().is_empty() && g.export.pipelines.is_empty()) {
            return Default::default();
        }
        if let Some(listed) = &g.pipelines {
            return listed.iter().cloned().collect();
        }
        let stores = self.api_stores();
        let traces = self
            .pipelines
            .iter()
            .filter(|(_, (signal, _))| *signal == Signal::Traces);
        let stored: std::collections::BTreeSet<String> = traces
            .clone()
            .filter(|(_, (_, p))| p.exporters.iter().any(|e| stores.contains(e)))
            .map(|(id, _)| id.clone())
            .collect();
        if stored.is_empty() {
            traces.map(|(id, _)| id.clone()).collect()
        } else {
            stored
        }
    }

    /// The alerts extension in effect, if `service.extensions` runs one.
    pub fn alerts(&self) -> Option<(&String, &crate::alerts::AlertsConfig)> {
        self.service_extensions
            .iter()
            .find_map(|id| match self.extensions.get(id) {
                Some(ExtensionConfig::Alerts(a)) => Some((id, a)),
                _ => None,
            })
    }

    /// Secure by default: without API keys, every listener must be on loopback.
    fn check_exposure(&self, problems: &mut Vec<Problem>) {
        if self.auth().is_some() {
            return;
        }
        let mut listeners: Vec<(String, &str)> = Vec::new();
        for (id, r) in &self.receivers {
            let ReceiverConfig::Otlp(otlp) = r;
            if let Some(g) = &otlp.protocols.grpc {
                listeners.push((
                    format!("receivers.{id}.protocols.grpc.endpoint"),
                    &g.endpoint,
                ));
            }
            if let Some(h) = &otlp.protocols.http {
                listeners.push((
                    format!("receivers.{id}.protocols.http.endpoint"),
                    &h.endpoint,
                ));
            }
        }
        for id in &self.service_extensions {
            if let Some(ExtensionConfig::Api(api)) = self.extensions.get(id) {
                listeners.push((format!("extensions.{id}.endpoint"), &api.endpoint));
            }
        }
        for (path, endpoint) in listeners {
            let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                problems.push(Problem::new(
                    &path,
                    format!(
                        "{endpoint:?} is reachable from other machines but no API keys are required; \
                         add the `auth` extension (mode: api_key) to service.extensions, or listen on 127.0.0.1"
                    ),
                ));
            }
        }
    }
}

fn yaml_location(e: &serde_yaml::Error) -> String {
    e.location().map_or_else(String::new, |l| {
        format!("line {} column {}", l.line(), l.column())
    })
}

/// Deserializes with the path of the first error; a `null` value means all defaults.
fn from_value<T: DeserializeOwned>(
    value: Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let value = if value.is_null() {
        Value::Mapping(Mapping::new())
    } else {
        value
    };
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(v) => Some(v),
        Err(e) => {
            let inner = e.path().to_string();
            let full = if inner == "." {
                path.to_owned()
            } else {
                join(path, &inner)
            };
            problems.push(Problem::new(&full, e.into_inner().to_string()));
            None
        }
    }
}

/// A component config deserialized and validated.
pub(crate) fn checked<T: DeserializeOwned>(
    value: Value,
    path: &str,
    problems: &mut Vec<Problem>,
    validate: impl FnOnce(&T) -> Result<(), String>,
) -> Option<T> {
    let config: T = from_value(value, path, problems)?;
    match validate(&config) {
        Ok(()) => Some(config),
        Err(message) => {
            // `validate` messages start with the field they are about: `field: what is wrong`.
            problems.push(field_problem(path, &message));
            None
        }
    }
}

/// A problem from a `field: what is wrong` message about the section at `path`.
fn field_problem(path: &str, message: &str) -> Problem {
    match message.split_once(": ") {
        Some((field, rest)) if !field.contains(' ') => Problem::new(&join(path, field), rest),
        _ => Problem::new(path, message),
    }
}

/// Takes an exporter's `retry_on_failure` and `sending_queue` out of its settings; they are
/// the collector's, not the exporter's. `None` (a problem noted) when they are invalid.
fn take_delivery(
    value: &mut Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<crate::queue::DeliveryConfig> {
    let mut own = Mapping::new();
    if let Value::Mapping(settings) = value {
        for key in ["retry_on_failure", "sending_queue"] {
            if let Some(v) = settings.remove(key) {
                own.insert(Value::from(key), v);
            }
        }
    }
    let delivery: crate::queue::DeliveryConfig = from_value(Value::Mapping(own), path, problems)?;
    let consumers = delivery.sending_queue.num_consumers;
    if !(1..=crate::queue::MAX_CONSUMERS).contains(&consumers) {
        problems.push(Problem::new(
            &join(path, "sending_queue.num_consumers"),
            format!("must be 1 to {}", crate::queue::MAX_CONSUMERS),
        ));
        return None;
    }
    Some(delivery)
}

fn unknown_type<T>(
    path: &str,
    problems: &mut Vec<Problem>,
    what: &str,
    kind: &str,
    known: &[&'static str],
) -> Option<T> {
    problems.push(Problem::new(
        path,
        format!(
            "unknown {what} type {kind:?}; known types: {}",
            known.join(", ")
        ),
    ));
    None
}

/// Each `type[/name]: config` entry of a section, built by `build` from its type.
fn components<T>(
    section: Option<Mapping>,
    section_name: &str,
    problems: &mut Vec<Problem>,
    mut build: impl FnMut(&str, Value, &str, &mut Vec<Problem>) -> Option<T>,
) -> BTreeMap<String, T> {
    let mut out = BTreeMap::new();
    for (key, value) in section.unwrap_or_default() {
        let Some(id) = key.as_str().map(str::to_owned) else {
            problems.push(Problem::new(
                section_name,
                format!("component ids are strings, not {key:?}"),
            ));
            continue;
        };
        let path = join(section_name, &id);
        let kind = match id.split_once('/') {
            Some((kind, "")) => {
                problems.push(Problem::new(&path, "the name after '/' must not be empty"));
                kind
            }
            Some((kind, _)) => kind,
            None => id.as_str(),
        };
        if let Some(config) = build(kind, value, &path, problems) {
            out.insert(id, config);
        }
    }
    out
}

#[cfg(test)]
mod tests;
