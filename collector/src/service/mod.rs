//! A running collector, started from a checked [`Config`] in four steps (exporters with their
//! drivers, pipelines, receivers, APIs) and stopped gracefully in the reverse order: receivers
//! stop accepting, every driver drains its queue (what the disk queue still holds then waits
//! for the next start), each exporter is shut down once its last driver is done, then the APIs
//! stop.

mod exporters;
mod listeners;
mod on_runtime;
mod pipelines;
mod workers;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::limits::Limiter;
use crate::telemetry::Telemetry;

pub use exporters::RunningExporter;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("exporter {id}: {reason}")]
    Exporter { id: String, reason: String },
    #[error("processor {id}: {reason}")]
    Processor { id: String, reason: String },
    #[error("queue of pipeline {pipeline} in {dir}: {reason}")]
    Queue {
        pipeline: String,
        dir: String,
        reason: String,
    },
    #[error("{component}: TLS: {reason}")]
    Tls { component: String, reason: String },
    #[error("extension {id}: {reason}")]
    Extension { id: String, reason: String },
    #[error("cannot listen on {endpoint} for {component}: {source}")]
    Listen {
        component: String,
        endpoint: String,
        source: std::io::Error,
    },
}

/// The addresses actually bound (useful with port 0).
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    /// Receiver id to its OTLP/gRPC address.
    pub grpc: BTreeMap<String, SocketAddr>,
    /// Receiver id to its OTLP/HTTP address.
    pub http: BTreeMap<String, SocketAddr>,
    /// Extension id to the query API's address.
    pub api: BTreeMap<String, SocketAddr>,
}

pub struct Service {
    pub addresses: Addresses,
    pub telemetry: Telemetry,
    stop: watch::Sender<bool>,
    drain: watch::Sender<bool>,
    receivers: Vec<(String, JoinHandle<Result<(), String>>)>,
    exporters: BTreeMap<String, RunningExporter>,
    apis: Vec<JoinHandle<Result<(), String>>>,
    workers: Vec<JoinHandle<()>>,
    /// Where the APIs run; kept to the end.
    api_runtime: ApiRuntime,
}

/// The query APIs' (and live-stream subscribers') own runtime: ingestion's requests never wait
/// in a queue behind theirs, and the operating system shares the cores between the two.
struct ApiRuntime(Option<tokio::runtime::Runtime>);

impl ApiRuntime {
    fn start() -> Result<Self, StartError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads((cores / 4).max(1))
            .thread_name("llmscope-api")
            .enable_all()
            .build()
            .map(|rt| Self(Some(rt)))
            .map_err(|source| StartError::Listen {
                component: "api runtime".into(),
                endpoint: String::new(),
                source,
            })
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for ApiRuntime {
    fn drop(&mut self) {
        // Never blocks, so it may happen inside the main runtime.
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Resolves once `rx` says stop.
pub(crate) fn stopped(
    rx: &watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

impl Service {
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let telemetry = Telemetry::default();
        let (stop, stop_rx) = watch::channel(false);
        // Set once the receivers have stopped: drivers then drain their queues and exit.
        let (drain, drain_rx) = watch::channel(false);

        let mut exporters = exporters::start(config, &telemetry, &drain_rx).await?;
        let api_runtime = ApiRuntime::start()?;
        let (stream, mut workers) =
            stream(config, &telemetry, &stop_rx, &api_runtime.handle()).await?;
        let gen_ai = gen_ai_metrics(config, &telemetry);
        let taps = taps(config, stream.clone(), gen_ai.clone());
        let started = pipelines::start(config, &mut exporters, &telemetry, &drain_rx, &taps)?;
        if let Some((metrics, export)) = gen_ai.zip(export_pipelines(config, &started)) {
            workers.push(metrics.export(export, &stop_rx));
        }
        let feeds = started.feeds;
        let (auth, limits) = access(config, &exporters, &telemetry)?;
        let alerts =
            workers::alerts(config, &exporters, &telemetry, &stop_rx, stream.clone()).await?;
        let alerts = alerts.map(|(a, w)| {
            workers.push(w);
            a
        });
        let mut addresses = Addresses::default();
        let receivers = listeners::receivers(
            config,
            feeds,
            listeners::Access {
                auth: auth.clone(),
                limits,
            },
            &telemetry,
            &stop_rx,
            &mut addresses,
        )
        .await?;
        let apis = listeners::apis(
            config,
            &exporters,
            listeners::ApiParts {
                auth,
                alerts,
                stream,
            },
            (&telemetry, &api_runtime.handle()),
            &stop_rx,
            &mut addresses,
        )
        .await?;
        // Pipelines now hold the only senders of the memory queues: when the receivers stop,
        // those queues close.
        for running in exporters.values_mut() {
            running.sender = None;
        }
        Ok(Self {
            addresses,
            telemetry,
            stop,
            drain,
            receivers,
            exporters,
            apis,
            workers,
            api_runtime,
        })
    }

    /// Stops accepting, lets in-flight requests finish, drains every exporter queue within
    /// `deadline`, shuts the exporters down, then stops the API. Returns whether everything was
    /// flushed in time.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let _ = self.stop.send(true);
        let exporters = self.exporters;
        let flush = async {
            for (name, handle) in self.receivers {
                match handle.await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => {
                        tracing::warn!(receiver = %name, %error, "receiver stopped with an error")
                    }
                    Err(error) => tracing::warn!(receiver = %name, %error, "receiver task failed"),
                }
            }
            let _ = self.drain.send(true);
            let mut stopping = Vec::new();
            for (id, running) in exporters {
                stopping.push(async move { running.stop(&id).await });
            }
            futures_util::future::join_all(stopping).await;
        };
        let flushed = tokio::time::timeout(deadline, flush).await.is_ok();
        if !flushed {
            tracing::warn!(
                ?deadline,
                "shutdown deadline passed before every batch was exported"
            );
        }
        for handle in self.workers {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        for handle in self.apis {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        drop(self.api_runtime);
        flushed
    }
}

/// The live stream, when an `api` extension serves one (the first one's settings).
async fn stream(
    config: &Config,
    telemetry: &Telemetry,
    stop: &watch::Receiver<bool>,
    runtime: &tokio::runtime::Handle,
) -> Result<(Option<Arc<crate::stream::Stream>>, Vec<JoinHandle<()>>), StartError> {
    let Some((id, api)) = config.apis().into_iter().find(|(_, a)| a.stream.enabled) else {
        return Ok((None, Vec::new()));
    };
    let (stream, tasks) =
        crate::stream::Stream::start(api.stream.clone(), telemetry, stop, runtime)
            .await
            .map_err(|reason| StartError::Extension {
                id: id.clone(),
                reason,
            })?;
    Ok((Some(stream), tasks))
}

/// The GenAI usage metrics, unless they are off or count no pipeline.
fn gen_ai_metrics(
    config: &Config,
    telemetry: &Telemetry,
) -> Option<Arc<crate::genai_metrics::GenAiMetrics>> {
    if config.gen_ai_metric_pipelines().is_empty() {
        return None;
    }
    let settings = config.telemetry.metrics.gen_ai.clone();
    Some(crate::genai_metrics::GenAiMetrics::start(
        settings, telemetry,
    ))
}

/// What taps which pipelines: the stream sees what reaches a store the API reads; the GenAI
/// metrics, the pipelines they count.
fn taps(
    config: &Config,
    stream: Option<Arc<crate::stream::Stream>>,
    gen_ai: Option<Arc<crate::genai_metrics::GenAiMetrics>>,
) -> pipelines::Taps {
    let mut taps: pipelines::Taps = Vec::new();
    if let Some(stream) = stream {
        let stores = config.api_stores();
        let ids = config
            .pipelines
            .iter()
            .filter(|(_, (_, p))| p.exporters.iter().any(|e| stores.contains(e)))
            .map(|(id, _)| id.clone())
            .collect();
        taps.push((stream, ids));
    }
    if let Some(metrics) = gen_ai {
        taps.push((metrics, config.gen_ai_metric_pipelines()));
    }
    taps
}

/// The metrics pipelines the GenAI metrics are sent into, if any.
fn export_pipelines(
    config: &Config,
    started: &pipelines::Started,
) -> Option<Vec<(String, Arc<dyn crate::pipeline::Consumer>)>> {
    let ids = &config.telemetry.metrics.gen_ai.export.pipelines;
    let out: Vec<_> = ids
        .iter()
        .filter_map(|id| Some((id.clone(), Arc::clone(started.pipelines.get(id)?))))
        .collect();
    (!out.is_empty()).then_some(out)
}

/// With keys required and none yet, every sender is refused: the log says how to make one.
async fn say_how_to_create_a_key(store: Arc<dyn llmscope_exporters::metadata::MetadataStore>) {
    match store.keys(None).await {
        Ok(keys) if keys.iter().all(|k| k.revoked_at_ns.is_some()) => tracing::warn!(
            "API keys are required and none exists yet: senders are refused until one does. \
             Create one with `llmscope keys create --project <project> --name <name>` (with this \
             config), or POST /api/v1/keys with the admin token"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot list API keys"),
    }
}

/// API keys and rate limits, when the `auth` extension runs.
type Access = (Option<Arc<Authenticator>>, Option<Arc<Limiter>>);

fn access(
    config: &Config,
    exporters: &BTreeMap<String, RunningExporter>,
    telemetry: &Telemetry,
) -> Result<Access, StartError> {
    let Some((id, auth)) = config.auth() else {
        return Ok((None, None));
    };
    let store = match auth.store() {
        None => None,
        Some(name) => match exporters.get(name).and_then(|e| e.metadata.clone()) {
            Some(store) => Some(store),
            None => {
                return Err(StartError::Extension {
                    id: id.clone(),
                    reason: format!("{name:?} keeps no API keys"),
                });
            }
        },
    };
    if let Some(store) = store.clone()
        && auth.keys.is_empty()
    {
        tokio::spawn(say_how_to_create_a_key(store));
    }
    let authenticator = Some(Arc::new(Authenticator::new(store, auth)));
    let limits = if auth.limits.is_empty() {
        None
    } else {
        let limiter = Limiter::new(auth.limits.clone(), telemetry).map_err(|reason| {
            StartError::Extension {
                id: id.clone(),
                reason,
            }
        })?;
        Some(Arc::new(limiter))
    };
    Ok((authenticator, limits))
}
