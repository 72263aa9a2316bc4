//! LLMScope core: the [`Batch`] that flows through every pipeline, the component traits
//! ([`Processor`], [`Exporter`]) and their [`factory`] traits, the GenAI semantic-convention keys and accessors
//! ([`semconv`]), and helpers for OTLP attribute values ([`attr`]).
//!
//! The pipeline carries decoded OTLP (the `opentelemetry-proto` prost types) from receiver to
//! exporter, so forwarding stays lossless and nothing is converted per hop.

pub mod attr;
mod batch;
mod component;
pub mod config;
pub mod factory;
pub mod otlp_json;
pub mod score;
pub mod semconv;
pub mod telemetry;
#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

pub use batch::{Batch, BatchContext, DEFAULT_PROJECT, Payload};
pub use component::{ExportError, Exporter, ProcessError, Processor};
pub use factory::{BoxFuture, DynExporter, ProcessorFactory, Settings};
pub use opentelemetry_proto::tonic as otlp;
