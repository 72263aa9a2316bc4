//! Every listener is bounded: a client that sends half a request is disconnected after the
//! header-read timeout, and connections past `max_connections` are closed on accept, counted.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{Collector, default_config_with};

async fn bounded() -> Collector {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = default_config_with(&dir, |text| {
        text.replace(
            "endpoint: ${env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}",
            "endpoint: ${env:LLMSCOPE_OTLP_HTTP_ENDPOINT:-127.0.0.1:4318}\n        max_connections: 3\n        header_read_timeout: 300ms",
        )
        .replace(
            "endpoint: ${env:LLMSCOPE_OTLP_GRPC_ENDPOINT:-127.0.0.1:4317}",
            "endpoint: ${env:LLMSCOPE_OTLP_GRPC_ENDPOINT:-127.0.0.1:4317}\n        max_connections: 2",
        )
    });
    Collector::start_with(config, dir).await
}

/// Whether the server closes `stream` within `within` (a read returns end of stream or an error).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_disconnected_after_the_header_timeout() {
    let c = bounded().await;
    let mut slow = TcpStream::connect(c.http).await.expect("connect");
    slow.write_all(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("half a request");
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "the server hung up"
    );
    assert_eq!(c.get("/healthz").await.status, hyper::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_counted() {
    let c = bounded().await;
    let refused = |listener: &str| {
        c.telemetry().value(
            "llmscope_listener_refused_connections_total",
            &[("listener", listener)],
        )
    };
    for (addr, cap, listener) in [
        (c.http, 3, "receivers.otlp.protocols.http"),
        (c.grpc, 2, "receivers.otlp.protocols.grpc"),
    ] {
        let mut held = Vec::new();
        for _ in 0..cap {
            held.push(TcpStream::connect(addr).await.expect("connect"));
        }
        // Give the server the time to accept them.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut extra = TcpStream::connect(addr).await.expect("connect");
        assert!(
            closed_within(&mut extra, Duration::from_secs(2)).await,
            "{listener}: the connection past the cap is closed"
        );
        assert_eq!(refused(listener), 1, "{listener}");
        drop(held);
        // Room again once the held ones are gone.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut again = TcpStream::connect(addr).await.expect("connect");
        assert!(
            !closed_within(&mut again, Duration::from_millis(200)).await,
            "{listener}: room again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_too() {
    let c = bounded().await;
    let mut idle = TcpStream::connect(c.http).await.expect("connect");
    idle.write_all(b"GET /v1/traces HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("a whole request");
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.expect("an answer");
    assert!(n > 0);
    // Nothing more is sent: the wait for the next request's headers is bounded as well.
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle connection closed"
    );
}
