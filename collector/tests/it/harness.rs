//! A running collector on ephemeral ports with its own SQLite file, and a small HTTP client.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use llmscope::config::{Config, DEFAULT_CONFIG};
use llmscope::service::Service;
use serde_json::Value as J;

pub struct Collector {
    service: Option<Service>,
    _dir: tempfile::TempDir,
    /// The SQLite file the default config writes.
    pub db: std::path::PathBuf,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// The query API's address; unspecified when the config runs none.
    pub api: SocketAddr,
    /// Sent with every query API request (an admin token when keys are required).
    pub api_headers: Vec<(String, String)>,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> J {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request through `client` (within 30 s) and its whole reply.
pub async fn exchange(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: String,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(Full::new(Bytes::from(body))).expect("request");
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .expect("no timeout")
        .expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

/// A client for [`exchange`], without a running [`Collector`].
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The built-in default config as `edit` rewrites its text, on ephemeral loopback ports,
/// storing (database and queue) under `dir`.
pub fn default_config_with(dir: &tempfile::TempDir, edit: impl FnOnce(&str) -> String) -> Config {
    let db = dir.path().join("data/llmscope.db").display().to_string();
    Config::parse("edited default", &edit(DEFAULT_CONFIG), &|var| match var {
        "LLMSCOPE_SQLITE_PATH" => Some(db.clone()),
        "LLMSCOPE_QUEUE_DIR" => Some(format!("{db}.queue")),
        v if v.ends_with("_ENDPOINT") => Some("127.0.0.1:0".into()),
        _ => None,
    })
    .expect("config")
}

impl Collector {
    /// The built-in default config, on ephemeral loopback ports, storing under a temp folder.
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = default_config_with(&dir, str::to_owned);
        let mut c = Self::start_with(config, dir).await;
        c.db = c._dir.path().join("data/llmscope.db");
        c
    }

    pub async fn start_with(config: Config, dir: tempfile::TempDir) -> Self {
        let service = Service::start(&config).await.expect("service starts");
        let a = &service.addresses;
        let api = a
            .api
            .get("api")
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (grpc, http) = (a.grpc["otlp"], a.http["otlp"]);
        Self {
            service: Some(service),
            db: dir.path().join("llmscope.db"),
            _dir: dir,
            grpc,
            http,
            api,
            api_headers: Vec::new(),
            client: client(),
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn telemetry(&self) -> &llmscope::telemetry::Telemetry {
        &self.service.as_ref().expect("running").telemetry
    }

    pub async fn request(
        &self,
        method: Method,
        url: String,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        exchange(&self.client, method, url, headers, body).await
    }

    /// `POST` to the OTLP/HTTP receiver.
    pub async fn post_otlp(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        self.request(
            Method::POST,
            format!("http://{}{path}", self.http),
            headers,
            body,
        )
        .await
    }

    /// `GET` from the query API.
    pub async fn get(&self, path_and_query: &str) -> Reply {
        let headers: Vec<(&str, &str)> = self
            .api_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.request(
            Method::GET,
            format!("http://{}{path_and_query}", self.api),
            &headers,
            Vec::new(),
        )
        .await
    }

    /// Polls the API until `ready` accepts the JSON (exports are asynchronous).
    pub async fn eventually(&self, path: &str, ready: impl Fn(&J) -> bool) -> J {
        let mut last = J::Null;
        for _ in 0..100 {
            let reply = self.get(path).await;
            if reply.status == StatusCode::OK {
                last = reply.json();
                if ready(&last) {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{path} never became ready; last answer: {last:#}");
    }

    /// Stops the collector (flushed) and hands back its folder, to start another on its files.
    pub async fn into_dir(mut self) -> tempfile::TempDir {
        let service = self.service.take().expect("running");
        assert!(service.shutdown(Duration::from_secs(10)).await, "flushed");
        self._dir
    }

    pub async fn stop(self) -> bool {
        self.stop_within(Duration::from_secs(10)).await
    }

    /// Stops the collector; whether everything was flushed within `deadline`.
    pub async fn stop_within(mut self, deadline: Duration) -> bool {
        let service = self.service.take().expect("running");
        service.shutdown(deadline).await
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("gzip");
    e.finish().expect("gzip")
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip");
    out
}
