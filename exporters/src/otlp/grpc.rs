//! OTLP over gRPC: the `Export` method of each signal's service, sent as bytes already encoded
//! (a pass-through codec), optionally gzip-compressed.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use llmscope_core::ExportError;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use super::{Compression, OtlpConfig, Rejected, Signal};

pub struct GrpcClient {
    channel: Channel,
    endpoint: String,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    gzip: bool,
    timeout: Duration,
}

/// Largest response accepted (a response is a few bytes: a partial success at most).
const MAX_RESPONSE: usize = 4 << 20;

impl GrpcClient {
    pub fn new(config: &OtlpConfig) -> Result<Self, String> {
        let mut endpoint = Endpoint::from_shared(config.endpoint.clone())
            .map_err(|e| format!("endpoint: {e}"))?
            .connect_timeout(config.timeout)
            .timeout(config.timeout)
            .tcp_nodelay(true);
        if config.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(path) = &config.tls.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("tls: cannot read {}: {e}", path.display()))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| format!("tls: {e}"))?;
        }
        let channel = endpoint.connect_lazy();
        let metadata = config
            .headers
            .iter()
            .map(|(name, value)| {
                let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("headers: {name:?} is not a valid gRPC metadata key"))?;
                let mut value = AsciiMetadataValue::try_from(value.expose())
                    .map_err(|_| format!("headers: the value of {name:?} is not valid"))?;
                value.set_sensitive(true);
                Ok((key, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            channel,
            endpoint: config.endpoint.clone(),
            metadata,
            gzip: config.compression == Compression::Gzip,
            timeout: config.timeout,
        })
    }

    pub async fn send(&self, signal: Signal, body: Vec<u8>) -> Result<Rejected, ExportError> {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_RESPONSE);
        if self.gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        let mut request = tonic::Request::new(Bytes::from(body));
        request.set_timeout(self.timeout);
        for (key, value) in &self.metadata {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        let path = hyper::http::uri::PathAndQuery::from_static(signal.grpc_path());
        let exchange = async {
            grpc.ready().await.map_err(|e| {
                ExportError::transient(format!("cannot reach {}: {e}", self.endpoint))
            })?;
            grpc.unary(request, path, PassThrough)
                .await
                .map_err(|status| self.classify(&status))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(response) => Ok(response?.into_inner()),
            Err(_) => Err(ExportError::transient(format!(
                "{}: no answer within {:?}",
                self.endpoint, self.timeout
            ))),
        }
    }

    /// A refusal as the driver should take it: retry what may succeed later, with the server's
    /// `RetryInfo`; a failure of the connection itself (a status made here, with a cause) is
    /// always worth retrying.
    fn classify(&self, status: &Status) -> ExportError {
        let message = format!(
            "{} answered {:?}: {}",
            self.endpoint,
            status.code(),
            status.message()
        );
        let transient = matches!(
            status.code(),
            Code::Unavailable
                | Code::ResourceExhausted
                | Code::DeadlineExceeded
                | Code::Aborted
                | Code::Cancelled
                | Code::OutOfRange
                | Code::DataLoss
        ) || std::error::Error::source(status).is_some();
        if transient {
            ExportError::Transient {
                message,
                retry_after: status
                    .get_details_retry_info()
                    .and_then(|info| info.retry_delay),
            }
        } else {
            ExportError::permanent(message)
        }
    }
}

/// Sends the request bytes as they are; reads the response's partial success.
#[derive(Clone, Copy)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Rejected;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        *self
    }

    fn decoder(&mut self) -> Self::Decoder {
        *self
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Rejected;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Rejected>, Status> {
        let body = src.copy_to_bytes(src.remaining());
        Ok(Some(Rejected::decode(&body)))
    }
}
