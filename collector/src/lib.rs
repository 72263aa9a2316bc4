//! LLMScope, the collector: receivers, config, registry, pipelines, the exporter driver, the
//! queue and the query API. `main.rs` only calls [`cli::main`].

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod genai_metrics;
pub mod limits;
pub mod pipeline;
pub mod queue;
pub mod receiver;
pub mod redis;
pub mod registry;
pub mod serve;
pub mod service;
pub mod stream;
pub mod tls;
pub mod ui;

/// The collector's counters (defined in core so every component can count).
pub use llmscope_core::telemetry;
