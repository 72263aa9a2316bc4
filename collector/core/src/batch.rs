use std::time::SystemTime;

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

/// The signal a batch carries, as decoded OTLP.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Traces(Vec<ResourceSpans>),
    Logs(Vec<ResourceLogs>),
    Metrics(Vec<ResourceMetrics>),
}

impl Payload {
    /// Number of items: spans, log records or metric data points.
    pub fn item_count(&self) -> usize {
        match self {
            Payload::Traces(rs) => rs
                .iter()
                .flat_map(|r| &r.scope_spans)
                .map(|s| s.spans.len())
                .sum(),
            Payload::Logs(rl) => rl
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| s.log_records.len())
                .sum(),
            Payload::Metrics(rm) => rm
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(metric_point_count)
                .sum(),
        }
    }

    /// The signal name as used in config (`traces`, `logs`, `metrics`).
    pub fn signal(&self) -> &'static str {
        match self {
            Payload::Traces(_) => "traces",
            Payload::Logs(_) => "logs",
            Payload::Metrics(_) => "metrics",
        }
    }
}

fn metric_point_count(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// Where a batch came from. Filled by the receiver, read by processors and exporters.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchContext {
    /// Project the data belongs to; `default` until API keys assign one.
    pub project: String,
    /// Id of the API key that sent the batch, when auth is on.
    pub api_key_id: Option<String>,
    /// Component id of the receiver, e.g. `otlp`.
    pub receiver: String,
    pub received_at: SystemTime,
}

impl Default for BatchContext {
    fn default() -> Self {
        Self {
            project: DEFAULT_PROJECT.to_owned(),
            api_key_id: None,
            receiver: String::new(),
            received_at: SystemTime::now(),
        }
    }
}

/// The project of data sent without an API key.
pub const DEFAULT_PROJECT: &str = "default";

/// One unit of work through a pipeline: a decoded OTLP request and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub payload: Payload,
    pub ctx: BatchContext,
    /// Events processors derived from the payload (anomalies), as OTLP log records with an
    /// `event.name`. Exporters store them with the batch, in the same write.
    pub events: Vec<ResourceLogs>,
}

impl Batch {
    pub fn new(payload: Payload, ctx: BatchContext) -> Self {
        Self {
            payload,
            ctx,
            events: Vec::new(),
        }
    }
}
