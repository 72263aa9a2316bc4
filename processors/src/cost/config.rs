use std::path::PathBuf;

use serde::Deserialize;

/// One model's prices, USD per million tokens.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Provider as `gen_ai.provider.name` spells it; prefers this entry for that provider when
    /// two entries share a model name. Optional.
    #[serde(default)]
    pub provider: Option<String>,
    /// Model id without date or version suffixes (`gpt-4o-mini`, `claude-3-5-haiku`).
    pub model: String,
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens (reasoning included unless `reasoning` is set).
    pub output: f64,
    /// Input tokens read from the prompt cache. Default: `input`.
    #[serde(default)]
    pub cache_read: Option<f64>,
    /// Input tokens written to the prompt cache. Default: `input`.
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Reasoning tokens, where priced apart from output. Default: `output`.
    #[serde(default)]
    pub reasoning: Option<f64>,
}

/// A price table file: the shape of the built-in `prices.yaml`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    /// When the prices were taken (free text, e.g. `2025-10-01`).
    #[serde(default)]
    pub taken: Option<String>,
    pub models: Vec<ModelPrice>,
}

/// Configuration of the `cost` processor.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CostConfig {
    /// Start from the built-in price table. Default: true.
    pub builtin_prices: bool,
    /// A YAML or JSON price table (same shape as the built-in one), read once at start; its
    /// entries override built-in ones of the same model. Default: none.
    pub prices_file: Option<PathBuf>,
    /// Inline entries; they override both of the above. Default: none.
    pub models: Vec<ModelPrice>,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            builtin_prices: true,
            prices_file: None,
            models: Vec::new(),
        }
    }
}

impl ModelPrice {
    fn check(&self) -> Result<(), String> {
        let prices = [
            Some(self.input),
            Some(self.output),
            self.cache_read,
            self.cache_write,
            self.reasoning,
        ];
        if self.model.trim().is_empty() {
            return Err("model must not be empty".into());
        }
        if prices.iter().flatten().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(format!(
                "{}: prices must be finite and not negative",
                self.model
            ));
        }
        Ok(())
    }
}

impl CostConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (i, m) in self.models.iter().enumerate() {
            m.check().map_err(|e| format!("models[{i}]: {e}"))?;
        }
        if let Some(path) = &self.prices_file {
            let table = super::table::read_file(path).map_err(|e| format!("prices_file: {e}"))?;
            for m in &table.models {
                m.check().map_err(|e| format!("prices_file: {e}"))?;
            }
        }
        Ok(())
    }
}
