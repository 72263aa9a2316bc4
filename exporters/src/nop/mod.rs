//! `nop`: takes every batch and drops it. For measuring the pipeline without a store, and for
//! tests. `nop:` with nothing under it is valid; the driver still counts what it "sent".

use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, ExportError, Exporter};
use serde::Deserialize;

use crate::factory::{BuildError, Built, ExporterFactory};

/// `nop` has no settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NopConfig {}

/// Drops every batch.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nop;

impl Exporter for Nop {
    async fn export(&self, _batch: &Batch) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Builds `nop` exporters.
pub struct Factory;

impl ExporterFactory for Factory {
    const TYPE: &'static str = "nop";
    type Config = NopConfig;

    async fn build(
        _id: &str,
        _config: &NopConfig,
        _telemetry: &Telemetry,
    ) -> Result<Built, BuildError> {
        Ok(Built::write_only(Nop))
    }
}
