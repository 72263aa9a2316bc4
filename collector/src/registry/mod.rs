//! The registry: every processor and exporter type the collector knows, each listed once by
//! its factory. Adding one is a folder in `processors/` or `exporters/` and a line here; nothing
//! else in the collector names a concrete component. Tests and embedders add their own with
//! [`Registry::with_processor`] and [`Registry::with_exporter`].

mod kinds;

use llmscope_exporters::{clickhouse, debug, nop, otlp, postgres, sqlite};
use llmscope_processors::{anomaly, cost, normalize, redact};

pub use kinds::{
    AnySettings, Exporter, ExporterConfig, ExporterKind, Processor, ProcessorConfig, ProcessorKind,
};

/// The processors, in the order the docs list them.
pub static PROCESSORS: &[&dyn ProcessorKind] = &[
    &Processor::<normalize::Factory>::NEW,
    &Processor::<cost::Factory>::NEW,
    &Processor::<redact::Factory>::NEW,
    &Processor::<anomaly::Factory>::NEW,
];

/// The exporters: stores first, then the write-only ones.
pub static EXPORTERS: &[&dyn ExporterKind] = &[
    &Exporter::<sqlite::Factory>::NEW,
    &Exporter::<clickhouse::Factory>::NEW,
    &Exporter::<postgres::Factory>::NEW,
    &Exporter::<otlp::Factory>::NEW,
    &Exporter::<debug::Factory>::NEW,
    &Exporter::<nop::Factory>::NEW,
];

/// The component types a config may use.
#[derive(Clone)]
pub struct Registry {
    processors: Vec<&'static dyn ProcessorKind>,
    exporters: Vec<&'static dyn ExporterKind>,
}

impl Default for Registry {
    /// Every built-in type.
    fn default() -> Self {
        Self {
            processors: PROCESSORS.to_vec(),
            exporters: EXPORTERS.to_vec(),
        }
    }
}

impl Registry {
    /// These types and the processor `kind` (which replaces a built-in of the same type name).
    pub fn with_processor(mut self, kind: &'static dyn ProcessorKind) -> Self {
        self.processors
            .retain(|k| k.type_name() != kind.type_name());
        self.processors.push(kind);
        self
    }

    /// These types and the exporter `kind` (which replaces a built-in of the same type name).
    pub fn with_exporter(mut self, kind: &'static dyn ExporterKind) -> Self {
        self.exporters.retain(|k| k.type_name() != kind.type_name());
        self.exporters.push(kind);
        self
    }

    pub fn processor(&self, type_name: &str) -> Option<&'static dyn ProcessorKind> {
        self.processors
            .iter()
            .copied()
            .find(|k| k.type_name() == type_name)
    }

    pub fn exporter(&self, type_name: &str) -> Option<&'static dyn ExporterKind> {
        self.exporters
            .iter()
            .copied()
            .find(|k| k.type_name() == type_name)
    }

    pub fn processor_types(&self) -> Vec<&'static str> {
        self.processors.iter().map(|k| k.type_name()).collect()
    }

    pub fn exporter_types(&self) -> Vec<&'static str> {
        self.exporters.iter().map(|k| k.type_name()).collect()
    }
}
