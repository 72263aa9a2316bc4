//! Listening with bounds, for every listener (OTLP/HTTP, OTLP/gRPC, the API): at most
//! `max_connections` connections at once (a connection past it is closed as soon as it is
//! accepted, and counted), a deadline for the TLS handshake, and for HTTP a deadline to read each
//! request's headers. A half-sent request, an idle socket or a partial ClientHello cannot hold
//! a descriptor for ever.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use llmscope_core::telemetry::{Counter, Telemetry, metrics};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

/// Most connections a listener holds at once unless configured.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a client may take to send a request's headers unless configured.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address a request's connection came from, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The bounds of one listener.
#[derive(Clone)]
pub struct Bounds {
    slots: Arc<Semaphore>,
    refused: Counter,
}

impl Bounds {
    /// `listener` names the listener in the refused-connections counter.
    pub fn new(listener: &str, max_connections: usize, telemetry: &Telemetry) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            refused: telemetry.counter(
                &metrics::LISTENER_REFUSED_CONNECTIONS,
                &[("listener", listener)],
            ),
        }
    }

    /// The next connection there is room for; those past the cap are closed and counted.
    pub async fn accept(&self, listener: &TcpListener) -> (TcpStream, OwnedSemaphorePermit) {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    // Out of descriptors, most likely: give others a moment to close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(permit) => {
                    let _ = stream.set_nodelay(true);
                    return (stream, permit);
                }
                Err(_) => {
                    self.refused.add(1);
                    drop(stream);
                }
            }
        }
    }
}

/// Serves `router` on `listener` (TLS with `tls`) within `bounds`, giving each request
/// `header_read_timeout` to send its headers, until `shutdown`; then waits for the connections'
/// requests in flight.
pub async fn http(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    bounds: Bounds,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, permit) = tokio::select! {
            accepted = bounds.accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let mut router = router.clone();
        if let Ok(addr) = stream.peer_addr() {
            router = router.layer(axum::Extension(ClientAddr(addr)));
        }
        let service = TowerToHyperService::new(router);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(10));
            let served = match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::debug!(%error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        };
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                    watcher.watch(connection).await
                }
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(connection).await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// Accepted connections within `bounds`, for tonic.
pub fn incoming(
    listener: TcpListener,
    bounds: Bounds,
) -> impl futures_util::Stream<Item = io::Result<Capped>> + Send + 'static {
    futures_util::stream::unfold((listener, bounds), |(listener, bounds)| async move {
        let (stream, permit) = bounds.accept(&listener).await;
        let capped = Capped {
            stream,
            _permit: permit,
        };
        Some((Ok(capped), (listener, bounds)))
    })
}

/// A connection holding its place under the listener's cap until it closes.
pub struct Capped {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Capped {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}
