//! LLMScope processors. Each runs in memory, in config order, before anything is written to disk.

pub mod anomaly;
pub mod cost;
pub mod normalize;
pub mod redact;
