//! Factories: how the collector builds a component from the settings under its id in the config.
//! Each processor folder offers one [`ProcessorFactory`]; exporters offer theirs in the exporters
//! crate (they also say which query or metadata store they hold). The collector lists every
//! factory once, in its registry, and never names a concrete component anywhere else.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;

use crate::telemetry::Telemetry;
use crate::{Batch, ExportError, Exporter, Processor};

/// A boxed future, for the few places components are used through `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Settings of a component: `deny_unknown_fields`, every field defaulted, so that a bare
/// `type:` with nothing under it is valid.
pub trait Settings: DeserializeOwned + Debug + Clone + PartialEq + Send + Sync + 'static {}
impl<T: DeserializeOwned + Debug + Clone + PartialEq + Send + Sync + 'static> Settings for T {}

/// Builds one kind of processor.
pub trait ProcessorFactory: Send + Sync + 'static {
    /// The type name in config, the part of an id before `/` (`redact`, `redact/strict`).
    const TYPE: &'static str;
    /// Whether the processor keeps state that must see every item of a pipeline (baselines):
    /// then a pipeline's processor chains share one instance instead of one each.
    const SHARED: bool = false;
    type Config: Settings;

    /// Checks what deserializing cannot; a message starts with the field it is about
    /// (`field: what is wrong`).
    fn validate(_config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// A new instance (one per processor chain unless [`Self::SHARED`]).
    fn build(config: &Self::Config, telemetry: &Telemetry) -> Result<Box<dyn Processor>, String>;
}

/// [`Exporter`] through `dyn`: what the registry and the service hold.
pub trait DynExporter: Send + Sync + 'static {
    fn export_boxed<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), ExportError>>;
    fn shutdown_boxed(&self) -> BoxFuture<'_, ()>;
}

impl<E: Exporter> DynExporter for E {
    fn export_boxed<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<(), ExportError>> {
        Box::pin(self.export(batch))
    }

    fn shutdown_boxed(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.shutdown())
    }
}

impl Exporter for std::sync::Arc<dyn DynExporter> {
    // `**self`: the `dyn` inside. `self` is itself a `DynExporter` (through this impl), and
    // calling that would recurse.
    async fn export(&self, batch: &Batch) -> Result<(), ExportError> {
        (**self).export_boxed(batch).await
    }

    async fn shutdown(&self) {
        (**self).shutdown_boxed().await
    }
}
