//! A running collector: exporters and their drivers, pipelines, receivers and the API, started
//! from a checked [`Config`] and stopped gracefully.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{self, ApiState, QueryCache};
use crate::auth::Authenticator;
use crate::config::{Config, ExtensionConfig, ReceiverConfig, Signal};
use crate::limits::Limiter;
use crate::pipeline::{Consumer, Fanout, Pipeline};
use crate::queue::durable::{DurableHandle, DurableQueue};
use crate::queue::{MemoryQueue, QueueKind};
use crate::receiver::{self, Consumers, Ingest};
use crate::registry::{self, BuildError, RunningExporter};
use crate::telemetry::Telemetry;

/// How long a pipeline waits for room in a full exporter queue before refusing a request.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Build(#[from] BuildError),
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
    drivers: Vec<(String, JoinHandle<()>)>,
    apis: Vec<JoinHandle<Result<(), String>>>,
}

async fn listen(component: &str, endpoint: &str) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Listen {
        component: component.to_owned(),
        endpoint: endpoint.to_owned(),
        source,
    };
    let listener = TcpListener::bind(endpoint).await.map_err(err)?;
    let addr = listener.local_addr().map_err(err)?;
    Ok((listener, addr))
}

fn stopped(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

impl Service {
    pub async fn start(config: &Config) -> Result<Self, StartError> {
        let telemetry = Telemetry::default();
        let (stop, stop_rx) = watch::channel(false);
        // Set once the receivers have stopped: durable-queue drivers then drain and exit.
        let (drain, drain_rx) = watch::channel(false);

        // Exporters used by a pipeline or read by the API.
        let mut wanted: BTreeSet<&String> = config
            .pipelines
            .values()
            .flat_map(|(_, p)| &p.exporters)
            .collect();
        for ext in config.extensions.values() {
            match ext {
                ExtensionConfig::Api(api) => wanted.insert(&api.store),
                ExtensionConfig::Auth(auth) => wanted.insert(&auth.store),
            };
        }
        let mut exporters: BTreeMap<String, RunningExporter> = BTreeMap::new();
        for id in wanted {
            if let Some(c) = config.exporters.get(id) {
                exporters.insert(
                    id.clone(),
                    registry::exporter(id, c, config.delivery_of(id), &telemetry).await?,
                );
            }
        }

        // API keys, when the auth extension runs.
        let auth: Option<Arc<Authenticator>> = match config.auth() {
            Some((_, a)) => {
                let store = exporters.get(&a.store).and_then(|e| e.metadata.clone());
                store.map(|s| Arc::new(Authenticator::new(s, a)))
            }
            None => None,
        };

        // Rate limits, with API keys.
        let limits = match config.auth() {
            Some((id, a)) if !a.limits.is_empty() => Some(Arc::new(
                Limiter::new(a.limits.clone(), &telemetry).map_err(|reason| {
                    StartError::Extension {
                        id: id.clone(),
                        reason,
                    }
                })?,
            )),
            _ => None,
        };

        // Drivers over durable queues, one per pipeline and exporter.
        let mut log_drivers: Vec<(String, JoinHandle<()>)> = Vec::new();

        // Pipelines, and for each receiver the pipelines it feeds per signal.
        let mut feeds: BTreeMap<(&String, Signal), Vec<Arc<dyn Consumer>>> = BTreeMap::new();
        for (id, (signal, p)) in &config.pipelines {
            let configs: Vec<_> = p
                .processors
                .iter()
                .filter_map(|name| Some((name.as_str(), config.processors.get(name)?)))
                .collect();
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let processors = registry::processor_chains(&configs, cores, &telemetry)?;
            let pipeline: Arc<dyn Consumer> = match config.queue.kind {
                QueueKind::Memory => {
                    let senders = p
                        .exporters
                        .iter()
                        .filter_map(|name| Some(exporters.get(name)?.sender.clone()))
                        .collect();
                    let queue = MemoryQueue::new(senders, QUEUE_WAIT);
                    Arc::new(Pipeline::new(
                        id.clone(),
                        processors,
                        queue,
                        telemetry.clone(),
                    ))
                }
                QueueKind::Disk => {
                    let q = &config.queue;
                    let dir = q.dir.join(id.replace('/', "_"));
                    let (queue, recovery) = DurableQueue::open(
                        &dir,
                        q.fsync(),
                        q.segment_bytes,
                        q.max_bytes,
                        q.when_full,
                    )
                    .map_err(|e| StartError::Extension {
                        id: format!("service.queue ({})", dir.display()),
                        reason: e.to_string(),
                    })?;
                    if recovery.truncated_bytes > 0 {
                        tracing::warn!(pipeline = %id, truncated_bytes = recovery.truncated_bytes, "cut a torn queue tail");
                    }
                    telemetry
                        .counter("llmscope_queue_truncated_bytes_total", &[("pipeline", id)])
                        .add(recovery.truncated_bytes);
                    queue.limit_dead_letters(q.dead_letter_max_bytes);
                    queue.count_drops(
                        telemetry
                            .counter("llmscope_queue_dropped_records_total", &[("pipeline", id)]),
                    );
                    let weak = Arc::downgrade(&queue);
                    telemetry.gauge("llmscope_queue_bytes", &[("pipeline", id)], move || {
                        weak.upgrade().map_or(0, |q| q.log().bytes())
                    });
                    for name in &p.exporters {
                        if let Some(e) = exporters.get(name) {
                            let reader = queue.reader(name);
                            let weak = Arc::downgrade(&queue);
                            let cursor = name.clone();
                            telemetry.gauge(
                                "llmscope_queue_pending_bytes",
                                &[("pipeline", id), ("exporter", name)],
                                move || {
                                    weak.upgrade().map_or(0, |q| q.log().pending_bytes(&cursor))
                                },
                            );
                            telemetry.gauge(
                                "llmscope_queue_oldest_unexported_age_seconds",
                                &[("pipeline", id), ("exporter", name)],
                                reader.oldest_age(),
                            );
                            let handle = (e.spawn_log)(reader, drain_rx.clone());
                            log_drivers.push((format!("{id}/{name}"), handle));
                        }
                    }
                    Arc::new(Pipeline::new(
                        id.clone(),
                        processors,
                        DurableHandle(queue),
                        telemetry.clone(),
                    ))
                }
            };
            for r in &p.receivers {
                feeds
                    .entry((r, *signal))
                    .or_default()
                    .push(Arc::clone(&pipeline));
            }
        }
        let mut consumers: BTreeMap<&String, Consumers> = BTreeMap::new();
        for ((receiver, signal), mut pipelines) in feeds {
            let consumer: Arc<dyn Consumer> = if pipelines.len() == 1 {
                pipelines.remove(0)
            } else {
                Arc::new(Fanout(pipelines))
            };
            let c = consumers.entry(receiver).or_default();
            match signal {
                Signal::Traces => c.traces = Some(consumer),
                Signal::Logs => c.logs = Some(consumer),
                Signal::Metrics => c.metrics = Some(consumer),
            }
        }

        let mut addresses = Addresses::default();
        let mut receivers = Vec::new();
        for (id, consumers) in consumers {
            let Some(ReceiverConfig::Otlp(rc)) = config.receivers.get(id) else {
                continue;
            };
            let ingest = |transport| Ingest {
                receiver: id.clone(),
                transport,
                consumers: consumers.clone(),
                telemetry: telemetry.clone(),
                auth: auth.clone(),
                limits: limits.clone(),
            };
            if let Some(g) = &rc.protocols.grpc {
                let name = format!("receivers.{id}.protocols.grpc");
                let (listener, addr) = listen(&name, &g.endpoint).await?;
                let max =
                    usize::try_from(g.max_recv_msg_size_mib * 1024 * 1024).unwrap_or(usize::MAX);
                let tls = g.tls.clone();
                let ingest = ingest("grpc");
                let shutdown = stopped(&stop_rx);
                let server = async move {
                    receiver::serve_grpc(listener, ingest, max, tls.as_ref(), shutdown).await
                };
                receivers.push((name, tokio::spawn(server)));
                tracing::info!(receiver = %id, %addr, "OTLP/gRPC listening");
                addresses.grpc.insert(id.clone(), addr);
            }
            if let Some(h) = &rc.protocols.http {
                let name = format!("receivers.{id}.protocols.http");
                let (listener, addr) = listen(&name, &h.endpoint).await?;
                let max = usize::try_from(h.max_request_body_size).unwrap_or(usize::MAX);
                let router = receiver::http_router(ingest("http"), max);
                let tls = match &h.tls {
                    Some(files) => {
                        Some(
                            files
                                .server_config()
                                .map_err(|reason| StartError::Extension {
                                    id: name.clone(),
                                    reason,
                                })?,
                        )
                    }
                    None => None,
                };
                let server = receiver::serve_http(listener, router, tls, stopped(&stop_rx));
                receivers.push((
                    name,
                    tokio::spawn(async move { server.await.map_err(|e| e.to_string()) }),
                ));
                tracing::info!(receiver = %id, %addr, "OTLP/HTTP listening");
                addresses.http.insert(id.clone(), addr);
            }
        }

        let mut apis = Vec::new();
        for id in &config.service_extensions {
            let Some(ExtensionConfig::Api(api_config)) = config.extensions.get(id) else {
                continue;
            };
            let Some(store) = exporters
                .get(&api_config.store)
                .and_then(|e| e.store.clone())
            else {
                continue;
            };
            let (listener, addr) =
                listen(&format!("extensions.{id}"), &api_config.endpoint).await?;
            let cache =
                QueryCache::new(api_config.cache.clone(), &telemetry).map_err(|reason| {
                    StartError::Extension {
                        id: id.clone(),
                        reason,
                    }
                })?;
            let state = ApiState {
                store,
                config: api_config.clone(),
                telemetry: telemetry.clone(),
                auth: auth.clone(),
                cache: Arc::new(cache),
            };
            let server = api::serve(listener, state, stopped(&stop_rx));
            apis.push(tokio::spawn(async move {
                server.await.map_err(|e| e.to_string())
            }));
            tracing::info!(extension = %id, %addr, "query API listening");
            addresses.api.insert(id.clone(), addr);
        }

        // Pipelines now hold the only senders: when the receivers stop, the queues close.
        let mut drivers: Vec<(String, JoinHandle<()>)> = exporters
            .into_iter()
            .map(|(id, e)| (id, e.driver))
            .collect();
        drivers.extend(log_drivers);
        Ok(Self {
            drain,
            addresses,
            telemetry,
            stop,
            receivers,
            drivers,
            apis,
        })
    }

    /// Stops accepting, lets in-flight requests finish, drains every exporter queue within
    /// `deadline`, then stops the API. Returns whether everything was flushed in time.
    pub async fn shutdown(self, deadline: Duration) -> bool {
        let _ = self.stop.send(true);
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
            for (id, handle) in self.drivers {
                if let Err(error) = handle.await {
                    tracing::warn!(exporter = %id, %error, "exporter task failed");
                }
            }
        };
        let flushed = tokio::time::timeout(deadline, flush).await.is_ok();
        if !flushed {
            tracing::warn!(
                ?deadline,
                "shutdown deadline passed before every batch was exported"
            );
        }
        for handle in self.apis {
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        flushed
    }
}
