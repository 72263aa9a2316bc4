//! `cost`: prices every model call from a model price table (USD per million tokens) and writes
//! `llmscope.cost.{input,output,total}_usd`.
//!
//! Guarantees:
//! - Cache reads are priced at their discount, cache writes at their premium, reasoning tokens
//!   inside output (canonical counts are inclusive, so uncached input = input - cache reads -
//!   cache writes).
//! - The response model is preferred over the request model (it names the exact version).
//! - A model not in the table gets no cost, `llmscope.cost.unknown_model = true`, and a count.
//! - A cost the instrumentation already sent (`gen_ai.usage.cost`, `llm.cost.total`, LiteLLM's
//!   `gen_ai.cost.total_cost`) is kept as `llmscope.cost.provided_usd`.
//! - Token counts are left as they are, so cost can be recomputed when prices change.

mod config;
mod table;

use llmscope_core::telemetry::metrics;
use std::collections::HashMap;

use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::semconv as sc;
use llmscope_core::telemetry::{Counter, Telemetry};
use llmscope_core::{Batch, Payload, ProcessError, Processor, attr};

pub use config::{CostConfig, ModelPrice, PriceTable};
pub use table::{PriceBook, canonical_model};

/// Builds `cost` processors (`processors.cost[/name]`).
pub struct Factory;

impl llmscope_core::ProcessorFactory for Factory {
    const TYPE: &'static str = "cost";
    type Config = CostConfig;

    fn validate(config: &CostConfig) -> Result<(), String> {
        config.validate()
    }

    fn build(
        config: &CostConfig,
        telemetry: &llmscope_core::telemetry::Telemetry,
    ) -> Result<Box<dyn Processor>, String> {
        Ok(Box::new(Cost::new(config, telemetry)?))
    }
}

/// Set on spans whose model is not in the price table.
pub const UNKNOWN_MODEL: &str = "llmscope.cost.unknown_model";
/// A cost the instrumentation reported itself, kept beside ours.
pub const PROVIDED_USD: &str = "llmscope.cost.provided_usd";
/// Keys instrumentations report their own cost under.
const PROVIDED_COST_KEYS: &[&str] = &[
    "gen_ai.usage.cost",
    "llm.cost.total",
    // LiteLLM's own cache-aware cost.
    "gen_ai.cost.total_cost",
    "gen_ai.cost.total_usd",
];

/// Model ids resolved so far; bounded, cleared when full.
const RESOLVED_CAPACITY: usize = 4096;

/// The USD cost of one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallCost {
    pub input_usd: f64,
    pub output_usd: f64,
}

impl CallCost {
    pub fn total_usd(&self) -> f64 {
        self.input_usd + self.output_usd
    }
}

/// Token counts of one call, inclusive as in the canonical schema.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}

/// Prices `usage` with `price`.
pub fn price_call(price: &ModelPrice, usage: &Usage) -> CallCost {
    let per = |tokens: i64, usd_per_million: f64| tokens.max(0) as f64 * usd_per_million / 1e6;
    let cache_read = usage.cache_read.max(0);
    let cache_write = usage.cache_write.max(0);
    let uncached = (usage.input - cache_read - cache_write).max(0);
    let reasoning = usage.reasoning.clamp(0, usage.output.max(0));
    let visible_output = usage.output.max(0) - reasoning;
    CallCost {
        input_usd: per(uncached, price.input)
            + per(cache_read, price.cache_read.unwrap_or(price.input))
            + per(cache_write, price.cache_write.unwrap_or(price.input)),
        output_usd: per(visible_output, price.output)
            + per(reasoning, price.reasoning.unwrap_or(price.output)),
    }
}

pub struct Cost {
    book: PriceBook,
    resolved: HashMap<(String, Option<String>), Option<ModelPrice>>,
    priced: Counter,
    unknown: Counter,
}

impl Cost {
    pub fn new(config: &CostConfig, telemetry: &Telemetry) -> Result<Self, String> {
        Ok(Self {
            book: PriceBook::from_config(config)?,
            resolved: HashMap::new(),
            priced: telemetry.counter(&metrics::COST_PRICED_SPANS, &[]),
            unknown: telemetry.counter(&metrics::COST_UNKNOWN_MODEL_SPANS, &[]),
        })
    }

    fn price_for(&mut self, model: &str, provider: Option<&str>) -> Option<ModelPrice> {
        let key = (model.to_owned(), provider.map(str::to_owned));
        if let Some(hit) = self.resolved.get(&key) {
            return hit.clone();
        }
        if self.resolved.len() >= RESOLVED_CAPACITY {
            self.resolved.clear();
        }
        let found = self.book.lookup(model, provider).cloned();
        self.resolved.insert(key, found.clone());
        found
    }

    fn price_span(&mut self, attrs: &mut Vec<KeyValue>) {
        if let Some(provided) = PROVIDED_COST_KEYS
            .iter()
            .find_map(|k| attr::get_f64(attrs, k))
        {
            attr::set_if_absent(attrs, PROVIDED_USD, Value::DoubleValue(provided));
        }
        if !sc::is_model_call(attrs) || attr::has(attrs, sc::COST_TOTAL_USD) {
            return;
        }
        let usage = Usage {
            input: attr::get_i64(attrs, sc::USAGE_INPUT_TOKENS).unwrap_or(0),
            output: attr::get_i64(attrs, sc::USAGE_OUTPUT_TOKENS).unwrap_or(0),
            cache_read: attr::get_i64(attrs, sc::USAGE_CACHE_READ_INPUT_TOKENS).unwrap_or(0),
            cache_write: attr::get_i64(attrs, sc::USAGE_CACHE_CREATION_INPUT_TOKENS).unwrap_or(0),
            reasoning: attr::get_i64(attrs, sc::USAGE_REASONING_OUTPUT_TOKENS).unwrap_or(0),
        };
        if usage.input == 0 && usage.output == 0 {
            return;
        }
        let provider = attr::get_str(attrs, sc::PROVIDER_NAME).map(str::to_owned);
        let models = [sc::RESPONSE_MODEL, sc::REQUEST_MODEL]
            .map(|k| attr::get_str(attrs, k).map(str::to_owned));
        let price = models
            .into_iter()
            .flatten()
            .find_map(|m| self.price_for(&m, provider.as_deref()));
        match price {
            Some(price) => {
                let cost = price_call(&price, &usage);
                attr::set(
                    attrs,
                    sc::COST_INPUT_USD,
                    Value::DoubleValue(cost.input_usd),
                );
                attr::set(
                    attrs,
                    sc::COST_OUTPUT_USD,
                    Value::DoubleValue(cost.output_usd),
                );
                attr::set(
                    attrs,
                    sc::COST_TOTAL_USD,
                    Value::DoubleValue(cost.total_usd()),
                );
                self.priced.add(1);
            }
            None => {
                attr::set(attrs, UNKNOWN_MODEL, Value::BoolValue(true));
                self.unknown.add(1);
            }
        }
    }
}

impl Processor for Cost {
    fn process(&mut self, batch: &mut Batch) -> Result<(), ProcessError> {
        if let Payload::Traces(resource_spans) = &mut batch.payload {
            for span in resource_spans
                .iter_mut()
                .flat_map(|r| r.scope_spans.iter_mut())
                .flat_map(|s| s.spans.iter_mut())
            {
                self.price_span(&mut span.attributes);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
