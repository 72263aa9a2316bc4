//! The metrics as OTLP (cumulative histograms and monotonic sums, with the conventions' dotted
//! names and attribute keys), sent into metrics pipelines every `export.interval` and once more
//! when the collector stops.

use std::sync::Arc;

use llmscope_core::attr;
use llmscope_core::{Batch, BatchContext, Payload};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::series::{Hist, Table};
use super::{GenAiMetrics, calls, now_ns};
use crate::pipeline::Consumer;

const OVERFLOW: &str = "otel.metric.overflow";

impl GenAiMetrics {
    /// Every metric now, as one OTLP resource (the collector, `service.name` `llmscope`).
    pub fn otlp(&self) -> Vec<ResourceMetrics> {
        let now = now_ns();
        let start = self.started_ns;
        let keys: Vec<String> = calls::BASE
            .iter()
            .map(|k| (*k).to_owned())
            .chain(self.dimensions.iter().cloned())
            .collect();
        let with = |extra: &str| {
            let mut k = keys.clone();
            k.push(extra.to_owned());
            k
        };
        let s = self.state();
        let mut metrics = vec![
            histogram(
                "gen_ai.client.token.usage",
                "{token}",
                &s.token_usage,
                &with("gen_ai.token.type"),
                (start, now),
            ),
            histogram(
                "gen_ai.client.operation.duration",
                "s",
                &s.duration,
                &with("error.type"),
                (start, now),
            ),
        ];
        for (name, unit, table) in [
            ("llmscope.gen_ai.cost_usd", "{USD}", &s.cost),
            (
                "llmscope.gen_ai.usage.cache_read.input_tokens",
                "{token}",
                &s.cache_read,
            ),
            (
                "llmscope.gen_ai.usage.cache_creation.input_tokens",
                "{token}",
                &s.cache_write,
            ),
            (
                "llmscope.gen_ai.usage.reasoning.output_tokens",
                "{token}",
                &s.reasoning,
            ),
        ] {
            metrics.push(sum(name, unit, table, &keys, (start, now)));
        }
        drop(s);
        metrics.retain(|m| match &m.data {
            Some(metric::Data::Histogram(h)) => !h.data_points.is_empty(),
            Some(metric::Data::Sum(s)) => !s.data_points.is_empty(),
            _ => false,
        });
        if metrics.is_empty() {
            return Vec::new();
        }
        let mut resource = Vec::new();
        attr::set(&mut resource, "service.name", attr::string("llmscope"));
        vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "llmscope.gen_ai_metrics".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }]
    }

    /// Sends the metrics into `pipelines` every interval until `stop`, then once more.
    pub fn export(
        self: Arc<Self>,
        pipelines: Vec<(String, Arc<dyn Consumer>)>,
        stop: &watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let stopped = crate::service::stopped(stop);
        let interval = self.config.export.interval;
        tokio::spawn(async move {
            tokio::pin!(stopped);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut stopped => true,
                };
                self.send(&pipelines).await;
                if last {
                    break;
                }
            }
        })
    }

    async fn send(&self, pipelines: &[(String, Arc<dyn Consumer>)]) {
        let payload = self.otlp();
        if payload.is_empty() {
            return;
        }
        for (id, pipeline) in pipelines {
            let ctx = BatchContext {
                receiver: "gen_ai_metrics".into(),
                ..Default::default()
            };
            let batch = Batch::new(Payload::Metrics(payload.clone()), ctx);
            if let Err(error) = pipeline.consume(batch).await {
                tracing::warn!(pipeline = %id, %error, "GenAI metrics not exported this interval");
            }
        }
    }
}

fn attributes(pairs: Vec<(&str, &str)>) -> Vec<KeyValue> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let value = if k == OVERFLOW {
                Value::BoolValue(true)
            } else {
                Value::StringValue(v.to_owned())
            };
            KeyValue {
                key: k.to_owned(),
                value: Some(AnyValue { value: Some(value) }),
                ..Default::default()
            }
        })
        .collect()
}

fn histogram(
    name: &str,
    unit: &str,
    table: &Table<Hist>,
    keys: &[String],
    (start, now): (u64, u64),
) -> Metric {
    let data_points = table
        .samples(keys, (OVERFLOW, "true"))
        .into_iter()
        .map(|(pairs, h)| HistogramDataPoint {
            attributes: attributes(pairs),
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: h.count,
            sum: Some(h.sum),
            bucket_counts: h.counts.clone(),
            explicit_bounds: h.bounds.to_vec(),
            ..Default::default()
        })
        .collect();
    Metric {
        name: name.into(),
        description: table.help.into(),
        unit: unit.into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}

fn sum(
    name: &str,
    unit: &str,
    table: &Table<f64>,
    keys: &[String],
    (start, now): (u64, u64),
) -> Metric {
    let data_points = table
        .samples(keys, (OVERFLOW, "true"))
        .into_iter()
        .map(|(pairs, v)| NumberDataPoint {
            attributes: attributes(pairs),
            start_time_unix_nano: start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsDouble(*v)),
            ..Default::default()
        })
        .collect();
    Metric {
        name: name.into(),
        description: table.help.into(),
        unit: unit.into(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}
