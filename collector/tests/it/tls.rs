//! TLS on the OTLP receivers and the API, with a certificate generated for the test.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use llmscope::config::Config;
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use llmscope_core::test_util::fixtures;
use rustls::pki_types::ServerName;

use crate::harness::Collector;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate");
    let pem = cert.cert.pem();
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, &pem).expect("cert");
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).expect("key");
    (cert_file, key_file, pem)
}

/// One HTTPS request trusting only `ca_pem`.
async fn https(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").expect("name"), tcp)
        .await
        .expect("TLS handshake");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .expect("http");
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_and_api_serve_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_file, key_file, pem) = certificate(dir.path());
    let tls = format!(
        "\n        tls: {{cert_file: {}, key_file: {}}}",
        cert_file.display(),
        key_file.display()
    );
    let db = dir.path().join("data/llmscope.db").display().to_string();
    let text = llmscope::config::DEFAULT_CONFIG
        .replace(
            "endpoint: ${env:LLMSCOPE_OTLP_GRPC_ENDPOINT:-127.0.0.1:4317}",
            &format!("endpoint: 127.0.0.1:0{tls}"),
        )
        .replace(
            "endpoint: ${env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}",
            &format!("endpoint: 127.0.0.1:0{tls}"),
        )
        .replace(
            "endpoint: ${env:LLMSCOPE_API_ENDPOINT:-127.0.0.1:4320}",
            &format!(
                "endpoint: 127.0.0.1:0\n    tls: {{cert_file: {}, key_file: {}}}",
                cert_file.display(),
                key_file.display()
            ),
        );
    let config = Config::parse("tls.yaml", &text, &|var| match var {
        "LLMSCOPE_SQLITE_PATH" => Some(db.clone()),
        "LLMSCOPE_QUEUE_DIR" => Some(format!("{db}.queue")),
        _ => None,
    })
    .expect("tls config");
    let c = Collector::start_with(config, tempfile::tempdir().expect("tempdir")).await;

    let (status, _) = https(
        c.http,
        &pem,
        "POST",
        "/v1/traces",
        fixtures::OPENLLMETRY_OPENAI_CHAT.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(status, 200);

    let ca = tonic::transport::Certificate::from_pem(&pem);
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(ca)
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(format!("https://{}", c.grpc))
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("gRPC over TLS");
    let request: ExportTraceServiceRequest =
        serde_json::from_str(fixtures::OPENINFERENCE_OPENAI_CHAT).expect("request");
    TraceServiceClient::new(channel)
        .export(request)
        .await
        .expect("export over TLS");

    let mut traces = serde_json::Value::Null;
    for _ in 0..100 {
        let (status, body) = https(c.api, &pem, "GET", "/api/v1/traces", Vec::new()).await;
        assert_eq!(status, 200);
        traces = serde_json::from_slice(&body).expect("json");
        if traces["traces"].as_array().is_some_and(|t| t.len() == 2) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        traces["traces"].as_array().map(Vec::len),
        Some(2),
        "{traces}"
    );

    // Plain HTTP to a TLS port gets no HTTP answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(c.api)
        .await
        .expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        plain.read_to_end(&mut answer),
    )
    .await;
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(c.stop().await);
}

#[test]
fn missing_or_invalid_certificate_files_are_refused_at_start() {
    let text = llmscope::config::DEFAULT_CONFIG.replace(
        "endpoint: ${env:LLMSCOPE_API_ENDPOINT:-127.0.0.1:4320}",
        "endpoint: 127.0.0.1:4320\n    tls: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem}",
    );
    let err = Config::parse("bad-tls.yaml", &text, &|_| None).expect_err("refused");
    assert_eq!(err.problems[0].path, "extensions.api.tls");
    assert!(
        err.problems[0]
            .message
            .contains("cannot read /nonexistent/cert.pem")
    );
}
