//! Steps three and four: the OTLP receivers, fed by the pipelines, and the query APIs, reading
//! from their exporters' stores.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::exporters::RunningExporter;
use super::{Addresses, StartError, stopped};
use crate::api::{self, ApiState, QueryCache};
use crate::auth::Authenticator;
use crate::config::{Config, ExtensionConfig, ReceiverConfig};
use crate::limits::Limiter;
use crate::receiver::{self, Consumers, Ingest};
use crate::serve::Bounds;
use crate::telemetry::Telemetry;

/// A running server task, by the component it serves.
type Server = (String, JoinHandle<Result<(), String>>);

/// Who may send, and how much.
pub struct Access {
    pub auth: Option<Arc<Authenticator>>,
    pub limits: Option<Arc<Limiter>>,
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

/// Every receiver that feeds a pipeline, listening.
pub async fn receivers(
    config: &Config,
    feeds: BTreeMap<String, Consumers>,
    access: Access,
    telemetry: &Telemetry,
    stop: &watch::Receiver<bool>,
    addresses: &mut Addresses,
) -> Result<Vec<Server>, StartError> {
    let mut servers = Vec::new();
    for (id, consumers) in feeds {
        let Some(ReceiverConfig::Otlp(rc)) = config.receivers.get(&id) else {
            continue;
        };
        let ingest = |transport| Ingest {
            receiver: id.clone(),
            transport,
            consumers: consumers.clone(),
            telemetry: telemetry.clone(),
            auth: access.auth.clone(),
            limits: access.limits.clone(),
        };
        if let Some(g) = &rc.protocols.grpc {
            let name = format!("receivers.{id}.protocols.grpc");
            if let Some(files) = &g.tls {
                files.read().map_err(|reason| StartError::Tls {
                    component: name.clone(),
                    reason,
                })?;
            }
            let (listener, addr) = listen(&name, &g.endpoint).await?;
            let max = usize::try_from(g.max_recv_msg_size_mib * 1024 * 1024).unwrap_or(usize::MAX);
            let (tls, streams) = (g.tls.clone(), g.max_concurrent_streams);
            let bounds = Bounds::new(&name, g.max_connections, telemetry);
            let ingest = ingest("grpc");
            let shutdown = stopped(stop);
            let server = async move {
                let tls = tls.as_ref();
                receiver::serve_grpc(listener, ingest, max, streams, bounds, tls, shutdown).await
            };
            servers.push((name, tokio::spawn(server)));
            tracing::info!(receiver = %id, %addr, "OTLP/gRPC listening");
            addresses.grpc.insert(id.clone(), addr);
        }
        if let Some(h) = &rc.protocols.http {
            let name = format!("receivers.{id}.protocols.http");
            let tls = match &h.tls {
                Some(files) => Some(files.server_config().map_err(|reason| StartError::Tls {
                    component: name.clone(),
                    reason,
                })?),
                None => None,
            };
            let (listener, addr) = listen(&name, &h.endpoint).await?;
            let max = usize::try_from(h.max_request_body_size).unwrap_or(usize::MAX);
            let router = receiver::http_router(ingest("http"), max);
            let bounds = Bounds::new(&name, h.max_connections, telemetry);
            let server = crate::serve::http(
                listener,
                router,
                tls,
                bounds,
                h.header_read_timeout,
                stopped(stop),
            );
            servers.push((
                name,
                tokio::spawn(async move { server.await.map_err(|e| e.to_string()) }),
            ));
            tracing::info!(receiver = %id, %addr, "OTLP/HTTP listening");
            addresses.http.insert(id.clone(), addr);
        }
    }
    Ok(servers)
}

/// What the query APIs serve besides the store, each when it runs.
pub struct ApiParts {
    pub auth: Option<Arc<Authenticator>>,
    pub alerts: Option<Arc<crate::alerts::Alerts>>,
    pub stream: Option<Arc<crate::stream::Stream>>,
}

/// Every `api` extension that runs, listening, served on `runtime` (the APIs' own, so queries
/// and stream subscribers never queue ingestion's requests behind theirs). Config checks made
/// sure each names a store that answers queries.
pub async fn apis(
    config: &Config,
    exporters: &BTreeMap<String, RunningExporter>,
    parts: ApiParts,
    (telemetry, runtime): (&Telemetry, &tokio::runtime::Handle),
    stop: &watch::Receiver<bool>,
    addresses: &mut Addresses,
) -> Result<Vec<JoinHandle<Result<(), String>>>, StartError> {
    let mut servers = Vec::new();
    for id in &config.service_extensions {
        let Some(ExtensionConfig::Api(api_config)) = config.extensions.get(id) else {
            continue;
        };
        let Some(store) = exporters
            .get(&api_config.store)
            .and_then(|e| e.query.clone())
        else {
            return Err(StartError::Extension {
                id: id.clone(),
                reason: format!("{:?} answers no queries", api_config.store),
            });
        };
        let component = format!("extensions.{id}");
        let (listener, addr) = listen(&component, &api_config.endpoint).await?;
        // Handed over to the API runtime, whose reactor must own it.
        let listener = listener.into_std().map_err(|source| StartError::Listen {
            component,
            endpoint: api_config.endpoint.clone(),
            source,
        })?;
        let cache = QueryCache::new(api_config.cache.clone(), telemetry).map_err(|reason| {
            StartError::Extension {
                id: id.clone(),
                reason,
            }
        })?;
        let state = ApiState {
            store: super::on_runtime::OnRuntime::wrap(store, tokio::runtime::Handle::current()),
            config: api_config.clone(),
            telemetry: telemetry.clone(),
            auth: parts.auth.clone(),
            cache: Arc::new(cache),
            alerts: parts.alerts.clone(),
            stream: parts.stream.clone(),
        };
        let shutdown = stopped(stop);
        servers.push(runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).map_err(|e| e.to_string())?;
            api::serve(listener, state, shutdown)
                .await
                .map_err(|e| e.to_string())
        }));
        tracing::info!(extension = %id, %addr, "query API listening");
        addresses.api.insert(id.clone(), addr);
    }
    if servers.is_empty() {
        tracing::info!(
            "no query API: no `api` extension in service.extensions (a forwarding collector needs none)"
        );
    }
    Ok(servers)
}
