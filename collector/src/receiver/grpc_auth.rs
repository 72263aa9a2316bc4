//! OTLP/gRPC authenticates before it reads a body: a layer in front of the services checks the
//! key in the request's metadata (`authorization: Bearer`, `x-api-key`) and refuses with
//! `UNAUTHENTICATED` (or `UNAVAILABLE` when the key store cannot answer) without polling the
//! body, so an unauthenticated client costs neither decompression nor decoding. A client that
//! keeps failing is answered ever more slowly (by its address). An accepted
//! request carries its [`Caller`] to the service in the request's extensions.

use std::task::{Context, Poll};

use axum::http::{Request, Response};
use llmscope_core::BoxFuture;
use tower::{Layer, Service};

use super::{Caller, Ingest};

/// Wraps the gRPC services with [`Authenticate`].
#[derive(Clone)]
pub struct AuthenticateLayer(pub Ingest);

impl<S> Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate {
            inner,
            ingest: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticate<S> {
    inner: S,
    ingest: Ingest,
}

impl<S, B> Service<Request<B>> for Authenticate<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let ingest = self.ingest.clone();
        let presented = {
            let headers = request.headers();
            let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
            crate::auth::presented(header("authorization"), header("x-api-key"), false)
                .map(|p| p.to_string())
        };
        let from = {
            use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
            let extensions = request.extensions();
            extensions
                .get::<TcpConnectInfo>()
                .or_else(|| {
                    extensions
                        .get::<TlsConnectInfo<TcpConnectInfo>>()
                        .map(TlsConnectInfo::get_ref)
                })
                .and_then(TcpConnectInfo::remote_addr)
                .map(|a| a.ip())
        };
        Box::pin(async move {
            match ingest.caller(presented.as_deref(), from).await {
                Ok(caller) => {
                    request.extensions_mut().insert::<Caller>(caller);
                    inner.call(request).await
                }
                Err(error) => {
                    let status = match error {
                        crate::auth::AuthError::Unavailable => {
                            tonic::Status::unavailable(error.to_string())
                        }
                        _ => tonic::Status::unauthenticated(error.to_string()),
                    };
                    Ok(status.into_http())
                }
            }
        })
    }
}
