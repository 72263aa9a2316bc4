//! Factories through `dyn`: a typed factory ([`ProcessorFactory`], [`ExporterFactory`]) wrapped
//! as a [`ProcessorKind`] or [`ExporterKind`], and a component's checked settings kept with the
//! kind that parsed them ([`ProcessorConfig`], [`ExporterConfig`]), so that whatever a config
//! names can be built without naming its type.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use llmscope_core::telemetry::Telemetry;
use llmscope_core::{BoxFuture, ProcessorFactory, Settings};
use llmscope_exporters::factory::{BuildError, Built, ExporterFactory, Offers};
use serde_yaml::Value;

use crate::config::{Problem, checked};

/// A component's settings of any type.
pub trait AnySettings: Any + fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn same(&self, other: &dyn AnySettings) -> bool;
}

impl<T: Settings> AnySettings for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn same(&self, other: &dyn AnySettings) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}

/// `value` as checked settings of type `T`; `None` with the problems noted.
fn parse<T: Settings>(
    value: Value,
    path: &str,
    problems: &mut Vec<Problem>,
    validate: fn(&T) -> Result<(), String>,
) -> Option<Arc<dyn AnySettings>> {
    let settings: T = checked(value, path, problems, validate)?;
    Some(Arc::new(settings))
}

/// The settings of `F`, which parsed them.
fn typed<T: 'static>(settings: &dyn AnySettings) -> Result<&T, String> {
    settings
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| "settings of another component type".to_owned())
}

/// A processor type, whatever its settings.
pub trait ProcessorKind: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    /// One instance for every processor chain of a pipeline.
    fn shared(&self) -> bool;
    /// Deserializes and validates settings; `None` with the problems noted.
    fn parse(
        &self,
        value: Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Arc<dyn AnySettings>>;
    fn build(
        &self,
        settings: &dyn AnySettings,
        telemetry: &Telemetry,
    ) -> Result<Box<dyn llmscope_core::Processor>, String>;
}

/// The [`ProcessorKind`] of the factory `F`.
pub struct Processor<F>(PhantomData<fn() -> F>);

impl<F> Processor<F> {
    pub const NEW: Self = Self(PhantomData);
}

impl<F: ProcessorFactory> ProcessorKind for Processor<F> {
    fn type_name(&self) -> &'static str {
        F::TYPE
    }

    fn shared(&self) -> bool {
        F::SHARED
    }

    fn parse(
        &self,
        value: Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Arc<dyn AnySettings>> {
        parse(value, path, problems, F::validate)
    }

    fn build(
        &self,
        settings: &dyn AnySettings,
        telemetry: &Telemetry,
    ) -> Result<Box<dyn llmscope_core::Processor>, String> {
        F::build(typed(settings)?, telemetry)
    }
}

/// An exporter type, whatever its settings.
pub trait ExporterKind: Send + Sync + 'static {
    fn type_name(&self) -> &'static str;
    fn offers(&self) -> Offers;
    /// Deserializes and validates settings; `None` with the problems noted.
    fn parse(
        &self,
        value: Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Arc<dyn AnySettings>>;
    fn build<'a>(
        &'a self,
        id: &'a str,
        settings: &'a dyn AnySettings,
        telemetry: &'a Telemetry,
    ) -> BoxFuture<'a, Result<Built, BuildError>>;
    fn migrate<'a>(
        &'a self,
        settings: &'a dyn AnySettings,
    ) -> BoxFuture<'a, Result<Vec<&'static str>, BuildError>>;
}

/// The [`ExporterKind`] of the factory `F`.
pub struct Exporter<F>(PhantomData<fn() -> F>);

impl<F> Exporter<F> {
    pub const NEW: Self = Self(PhantomData);
}

impl<F: ExporterFactory> ExporterKind for Exporter<F> {
    fn type_name(&self) -> &'static str {
        F::TYPE
    }

    fn offers(&self) -> Offers {
        F::OFFERS
    }

    fn parse(
        &self,
        value: Value,
        path: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Arc<dyn AnySettings>> {
        parse(value, path, problems, F::validate)
    }

    fn build<'a>(
        &'a self,
        id: &'a str,
        settings: &'a dyn AnySettings,
        telemetry: &'a Telemetry,
    ) -> BoxFuture<'a, Result<Built, BuildError>> {
        Box::pin(async move { F::build(id, typed(settings)?, telemetry).await })
    }

    fn migrate<'a>(
        &'a self,
        settings: &'a dyn AnySettings,
    ) -> BoxFuture<'a, Result<Vec<&'static str>, BuildError>> {
        Box::pin(async move { F::migrate(typed(settings)?).await })
    }
}

/// A processor's checked settings with the kind that builds it.
#[derive(Clone)]
pub struct ProcessorConfig {
    kind: &'static dyn ProcessorKind,
    settings: Arc<dyn AnySettings>,
}

impl ProcessorConfig {
    pub fn new(kind: &'static dyn ProcessorKind, settings: Arc<dyn AnySettings>) -> Self {
        Self { kind, settings }
    }

    /// `settings` for the factory `F` (its kind is a zero-sized value: nothing is allocated).
    pub fn of<F: ProcessorFactory>(settings: F::Config) -> Self {
        let kind: &'static Processor<F> = Box::leak(Box::new(Processor::NEW));
        Self::new(kind, Arc::new(settings))
    }

    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    pub fn shared(&self) -> bool {
        self.kind.shared()
    }

    /// The settings, if they are a `T`.
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        self.settings.as_any().downcast_ref()
    }

    /// A new instance.
    pub fn build(
        &self,
        telemetry: &Telemetry,
    ) -> Result<Box<dyn llmscope_core::Processor>, String> {
        self.kind.build(self.settings.as_ref(), telemetry)
    }
}

/// An exporter's checked settings with the kind that builds it.
#[derive(Clone)]
pub struct ExporterConfig {
    kind: &'static dyn ExporterKind,
    settings: Arc<dyn AnySettings>,
}

impl ExporterConfig {
    pub fn new(kind: &'static dyn ExporterKind, settings: Arc<dyn AnySettings>) -> Self {
        Self { kind, settings }
    }

    /// `settings` for the factory `F` (its kind is a zero-sized value: nothing is allocated).
    pub fn of<F: ExporterFactory>(settings: F::Config) -> Self {
        let kind: &'static Exporter<F> = Box::leak(Box::new(Exporter::NEW));
        Self::new(kind, Arc::new(settings))
    }

    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    pub fn offers(&self) -> Offers {
        self.kind.offers()
    }

    /// The settings, if they are a `T`.
    pub fn settings<T: 'static>(&self) -> Option<&T> {
        self.settings.as_any().downcast_ref()
    }

    /// Opens the backend; `id` names it in logs and counters.
    pub async fn build(&self, id: &str, telemetry: &Telemetry) -> Result<Built, BuildError> {
        self.kind.build(id, self.settings.as_ref(), telemetry).await
    }

    /// Applies the backend's schema migrations; returns the names applied.
    pub async fn migrate(&self) -> Result<Vec<&'static str>, BuildError> {
        self.kind.migrate(self.settings.as_ref()).await
    }
}

macro_rules! config_traits {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(self.type_name())
                    .field(&self.settings)
                    .finish()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.type_name() == other.type_name() && self.settings.same(other.settings.as_ref())
            }
        }
    };
}

config_traits!(ProcessorConfig);
config_traits!(ExporterConfig);
