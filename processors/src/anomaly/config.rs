use std::time::Duration;

use serde::Deserialize;

/// Configuration of the `anomaly` processor.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalyConfig {
    /// How many standard deviations (of the series' own, log-scale baseline) a value must be
    /// above it to be an anomaly. Higher is quieter. Default: 5.5.
    pub sensitivity: f64,
    /// A latency (or a request volume) must also be at least this multiple of its baseline
    /// (or at most its inverse, for volume drops). Default: 2.
    pub min_ratio: f64,
    /// A cost or output-token count must be at least this multiple of its baseline. Higher than
    /// `min_ratio` because both follow the answer's length, which is heavy-tailed: a long answer
    /// is not an incident. Default: 4.
    pub min_usage_ratio: f64,
    /// Calls a series must have seen before it can report anomalies. Default: 50.
    pub warmup: u32,
    /// Half-life of the baselines, in calls: how fast they adapt. Default: 200.
    pub half_life: u32,
    /// After an anomaly, the same kind on the same series is not reported again until this
    /// long (span time) has passed without it: one incident is one anomaly. Default: `1m`.
    #[serde(with = "llmscope_core::config::duration")]
    pub cooldown: Duration,
    /// Series tracked at most; the least recently seen are evicted (counted). Default: 10000.
    pub max_series: usize,
    /// Calls in the sliding window the error rate is measured over. Default: 50.
    pub error_window: u32,
    /// Smallest windowed error rate reported. Default: 0.2.
    pub min_error_rate: f64,
    /// Width of the request-volume buckets (span time). Default: `1m`.
    #[serde(with = "llmscope_core::config::duration")]
    pub volume_bucket: Duration,
    /// Buckets a series must have seen before volume spikes and drops are reported. Default: 10.
    pub volume_warmup: u32,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            sensitivity: 5.5,
            min_ratio: 2.0,
            min_usage_ratio: 4.0,
            warmup: 50,
            half_life: 200,
            cooldown: Duration::from_secs(60),
            max_series: 10_000,
            error_window: 50,
            min_error_rate: 0.2,
            volume_bucket: Duration::from_secs(60),
            volume_warmup: 10,
        }
    }
}

impl AnomalyConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.sensitivity.is_finite() && self.sensitivity > 0.0) {
            return Err("sensitivity: must be a positive number".into());
        }
        if !(self.min_ratio.is_finite() && self.min_ratio >= 1.0) {
            return Err("min_ratio: must be at least 1".into());
        }
        if !(self.min_usage_ratio.is_finite() && self.min_usage_ratio >= 1.0) {
            return Err("min_usage_ratio: must be at least 1".into());
        }
        if self.half_life == 0 || self.warmup == 0 {
            return Err("half_life: and warmup must be at least 1".into());
        }
        if self.max_series == 0 {
            return Err("max_series: must be at least 1".into());
        }
        if !(1..=64).contains(&self.error_window) {
            return Err("error_window: must be between 1 and 64".into());
        }
        if !(0.0..=1.0).contains(&self.min_error_rate) {
            return Err("min_error_rate: must be between 0 and 1".into());
        }
        if self.volume_bucket < Duration::from_secs(1) {
            return Err("volume_bucket: must be at least 1s".into());
        }
        Ok(())
    }

    /// The EWMA weight of a new sample for the configured half-life.
    pub fn alpha(&self) -> f64 {
        1.0 - 0.5f64.powf(1.0 / f64::from(self.half_life))
    }
}
