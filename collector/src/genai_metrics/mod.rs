//! GenAI usage metrics, computed from the stored stream: every model-call span a counted
//! pipeline queued, after normalize and cost, becomes observations in the OpenTelemetry GenAI
//! conventions' shape, served at `/metrics` in Prometheus form and, when configured, sent as
//! OTLP metrics into metrics pipelines (to an `otlp` exporter, say) every `export.interval`.
//!
//! | Prometheus name | OTLP name | kind |
//! |---|---|---|
//! | `gen_ai_client_token_usage` | `gen_ai.client.token.usage` (`{token}`) | histogram, `gen_ai_token_type` input/output |
//! | `gen_ai_client_operation_duration_seconds` | `gen_ai.client.operation.duration` (`s`) | histogram, `error_type` on failures |
//! | `llmscope_gen_ai_cost_usd_total` | `llmscope.gen_ai.cost_usd` | counter |
//! | `llmscope_gen_ai_usage_cache_read_input_tokens_total` | `llmscope.gen_ai.usage.cache_read.input_tokens` | counter |
//! | `llmscope_gen_ai_usage_cache_creation_input_tokens_total` | `llmscope.gen_ai.usage.cache_creation.input_tokens` | counter |
//! | `llmscope_gen_ai_usage_reasoning_output_tokens_total` | `llmscope.gen_ai.usage.reasoning.output_tokens` | counter |
//!
//! Every series carries `gen_ai_operation_name`, `gen_ai_provider_name`,
//! `gen_ai_request_model`, `gen_ai_response_model` and `service_name` (empty when unknown),
//! then the configured `dimensions`. Histogram buckets are the conventions' boundaries.
//!
//! Guarantees:
//! - A call is counted once, as the API counts it, however many spans report it: spans sharing
//!   a response id (else a trace and span id) within the last `remembered_calls` calls are one
//!   call. Counters and histogram sums take its largest value; histogram buckets and counts,
//!   the first span that reports the value.
//! - Cardinality is bounded: each metric holds at most `series_limit` label sets; observations
//!   with a new one past the limit go to one overflow series (`otel_metric_overflow="true"`,
//!   the token type kept) and `llmscope_gen_ai_metrics_overflow_total{metric}` counts them.
//! - Counting never waits: the tap reads the batch's spans, then holds one lock for a few
//!   additions per call.
//! - Values are cumulative since the collector started (Prometheus handles the reset a restart
//!   makes).

mod calls;
mod config;
mod otlp;
pub mod series;

use std::sync::{Arc, Mutex};

use llmscope_core::Batch;
use llmscope_core::telemetry::{Counter, Families, Telemetry, metrics};
use prometheus::proto::{MetricFamily, MetricType};

pub use config::{ExportConfig, GenAiMetricsConfig};
use series::{DURATION_BUCKETS, Hist, TOKEN_BUCKETS, Table, push_value};

/// The counted metrics, each a bounded table.
struct State {
    token_usage: Table<Hist>,
    duration: Table<Hist>,
    cost: Table<f64>,
    cache_read: Table<f64>,
    cache_write: Table<f64>,
    reasoning: Table<f64>,
    recent: calls::Recent,
}

/// The GenAI metrics of one running collector: a pipeline tap and a source of families.
pub struct GenAiMetrics {
    config: GenAiMetricsConfig,
    /// The configured dimensions as attribute keys (aliases resolved).
    dimensions: Vec<String>,
    state: Mutex<State>,
    /// Overflowed observations by metric, in table order.
    overflow: [Counter; 6],
    started_ns: u64,
}

impl std::fmt::Debug for GenAiMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenAiMetrics")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

const TOKEN_USAGE: &str = "gen_ai_client_token_usage";
const DURATION: &str = "gen_ai_client_operation_duration_seconds";
const COST: &str = "llmscope_gen_ai_cost_usd_total";
const CACHE_READ: &str = "llmscope_gen_ai_usage_cache_read_input_tokens_total";
const CACHE_WRITE: &str = "llmscope_gen_ai_usage_cache_creation_input_tokens_total";
const REASONING: &str = "llmscope_gen_ai_usage_reasoning_output_tokens_total";
/// Every family's Prometheus name, in table order.
pub const NAMES: [&str; 6] = [
    TOKEN_USAGE,
    DURATION,
    COST,
    CACHE_READ,
    CACHE_WRITE,
    REASONING,
];

impl GenAiMetrics {
    /// Empty metrics for `config`, rendered at `/metrics` by `telemetry` from now on.
    pub fn start(config: GenAiMetricsConfig, telemetry: &Telemetry) -> Arc<Self> {
        let dimensions = config.attribute_keys();
        let labels: Vec<String> = calls::BASE
            .iter()
            .map(|k| prometheus_label(k))
            .chain(dimensions.iter().map(|k| prometheus_label(k)))
            .collect();
        let with = |extra: &str| {
            let mut l = labels.clone();
            l.push(extra.to_owned());
            l
        };
        let limit = config.series_limit;
        let table = |name, help| Table::new(name, help, labels.clone(), 0, limit, 0.0);
        let state = State {
            token_usage: Table::new(
                TOKEN_USAGE,
                "Tokens per model call, by token type (gen_ai.client.token.usage).",
                with("gen_ai_token_type"),
                1,
                limit,
                Hist::new(TOKEN_BUCKETS),
            ),
            duration: Table::new(
                DURATION,
                "Duration of model calls in seconds, error_type set on failures (gen_ai.client.operation.duration).",
                with("error_type"),
                0,
                limit,
                Hist::new(DURATION_BUCKETS),
            ),
            cost: table(
                COST,
                "Cost of model calls in US dollars, as priced by the cost processor.",
            ),
            cache_read: table(
                CACHE_READ,
                "Input tokens read from the provider's prompt cache.",
            ),
            cache_write: table(
                CACHE_WRITE,
                "Input tokens written to the provider's prompt cache.",
            ),
            reasoning: table(REASONING, "Output tokens spent on reasoning."),
            recent: calls::Recent::new(config.remembered_calls),
        };
        let overflow =
            NAMES.map(|m| telemetry.counter(&metrics::GEN_AI_METRICS_OVERFLOW, &[("metric", m)]));
        let this = Arc::new(Self {
            config,
            dimensions,
            state: Mutex::new(state),
            overflow,
            started_ns: now_ns(),
        });
        telemetry.add_families(Arc::clone(&this) as Arc<dyn Families>);
        this
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts the model calls of a processed batch.
    pub fn record(&self, batch: &Batch) {
        let calls = calls::read(batch, &self.dimensions);
        if calls.is_empty() {
            return;
        }
        let mut overflowed = [0u64; 6];
        let mut key = String::with_capacity(128);
        let mut s = self.state();
        for call in calls {
            s.add(call, &mut key, &mut overflowed);
        }
        drop(s);
        for (counter, n) in self.overflow.iter().zip(overflowed) {
            if n > 0 {
                counter.add(n);
            }
        }
    }
}

impl State {
    fn add(&mut self, call: calls::Call, key: &mut String, overflowed: &mut [u64; 6]) {
        let (counted, new) = self.recent.entry(&call.id);
        if new {
            let (h, over) = self.duration.cell(series_key(
                key,
                &call.labels,
                call.error_type.as_deref().unwrap_or(""),
            ));
            h.observe(call.duration_s);
            overflowed[1] += u64::from(over);
        }
        for (token_type, value, seen) in [
            ("input", call.input, &mut counted.input),
            ("output", call.output, &mut counted.output),
        ] {
            let Some(value) = value else { continue };
            match *seen {
                None => {
                    let (h, over) =
                        self.token_usage
                            .cell(series_key(key, &call.labels, token_type));
                    h.observe(value as f64);
                    overflowed[0] += u64::from(over);
                    *seen = Some(value);
                }
                // A later span of the call knows more: the sum takes the larger count.
                Some(before) if value > before => {
                    let (h, over) =
                        self.token_usage
                            .cell(series_key(key, &call.labels, token_type));
                    h.sum += (value - before) as f64;
                    overflowed[0] += u64::from(over);
                    *seen = Some(value);
                }
                Some(_) => {}
            }
        }
        for (i, table, value, seen) in [
            (
                3,
                &mut self.cache_read,
                call.cache_read,
                &mut counted.cache_read,
            ),
            (
                4,
                &mut self.cache_write,
                call.cache_write,
                &mut counted.cache_write,
            ),
            (
                5,
                &mut self.reasoning,
                call.reasoning,
                &mut counted.reasoning,
            ),
        ] {
            if let Some(value) = value.filter(|v| *v > *seen) {
                let (c, over) = table.cell(&call.labels);
                *c += (value - *seen) as f64;
                overflowed[i] += u64::from(over);
                *seen = value;
            }
        }
        if let Some(cost) = call.cost_usd.filter(|c| *c > counted.cost_usd) {
            let (c, over) = self.cost.cell(&call.labels);
            *c += cost - counted.cost_usd;
            overflowed[2] += u64::from(over);
            counted.cost_usd = cost;
        }
    }

    fn counters(&self) -> [&Table<f64>; 4] {
        [
            &self.cost,
            &self.cache_read,
            &self.cache_write,
            &self.reasoning,
        ]
    }
}

/// `labels` and one more value, as a series key, built in `key`.
fn series_key<'a>(key: &'a mut String, labels: &str, extra: &str) -> &'a str {
    key.clear();
    key.push_str(labels);
    push_value(key, extra);
    key
}

impl Families for GenAiMetrics {
    fn families(&self) -> Vec<MetricFamily> {
        let s = self.state();
        let mut out = vec![
            s.token_usage.family(MetricType::HISTOGRAM),
            s.duration.family(MetricType::HISTOGRAM),
        ];
        out.extend(s.counters().map(|t| t.family(MetricType::COUNTER)));
        out
    }
}

impl crate::pipeline::Tap for GenAiMetrics {
    fn offer(&self, batch: &Arc<Batch>) {
        self.record(batch);
    }
}

/// An attribute key in Prometheus label form: every character outside `[a-zA-Z0-9_]` becomes
/// `_`, and a leading digit gets a `_` before it (as Prometheus' OTLP translation does).
pub fn prometheus_label(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests;
