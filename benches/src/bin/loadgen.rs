//! `llmscope-loadgen`: sends OTLP GenAI spans to a collector over gRPC or HTTP (protobuf or
//! JSON), at a given rate or as fast as it can, with a given content size and PII density, and
//! reports spans sent, accepted and refused per second, and request latency percentiles.
//!
//!     llmscope-loadgen --protocol grpc --endpoint http://127.0.0.1:4317 --duration 10
//!     llmscope-loadgen --protocol http-json --endpoint http://127.0.0.1:4318 --rate 20000

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use llmscope_benches::{kv, prompt_text_with_pii};
use llmscope_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use llmscope_core::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::trace::v1::Span;
use prost::Message;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Protocol {
    Grpc,
    HttpProto,
    HttpJson,
}

#[derive(Debug, Parser)]
#[command(
    name = "llmscope-loadgen",
    about = "Sends OTLP GenAI spans to a collector and reports throughput"
)]
struct Args {
    #[arg(long, value_enum, default_value = "grpc")]
    protocol: Protocol,
    /// gRPC: `http://host:4317`; HTTP: `http://host:4318` (`/v1/traces` is appended).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    endpoint: String,
    /// Spans per second across all connections; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Spans per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Bytes of message content per span.
    #[arg(long, default_value_t = 1024)]
    content_bytes: usize,
    /// Fraction of content bytes that are PII (emails, phone and card numbers).
    #[arg(long, default_value_t = 0.01)]
    pii_density: f64,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// API key, sent as `authorization: Bearer <key>` (gRPC metadata or HTTP header).
    #[arg(long, env = "LLMSCOPE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One request of `n` chat spans; ids and times from `seq` so every request is distinct.
fn request(args: &Args, seq: u64, content: &str) -> ExportTraceServiceRequest {
    let models = [
        "gpt-4o-mini",
        "claude-3-5-haiku-20241022",
        "gemini-2.5-flash",
    ];
    let start = now_ns();
    let spans = (0..args.batch as u64)
        .map(|i| {
            let n = seq * args.batch as u64 + i;
            Span {
                trace_id: (u128::from(n) << 32 | 0xabcd).to_be_bytes().to_vec(),
                span_id: (n + 1).to_be_bytes().to_vec(),
                name: "chat".into(),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 400_000_000 + (n % 17) * 30_000_000,
                attributes: vec![
                    kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                    kv("gen_ai.system", Value::StringValue("openai".into())),
                    kv(
                        "gen_ai.request.model",
                        Value::StringValue(models[(n % 3) as usize].into()),
                    ),
                    kv(
                        "gen_ai.usage.prompt_tokens",
                        Value::IntValue(200 + (n % 50) as i64),
                    ),
                    kv(
                        "gen_ai.usage.completion_tokens",
                        Value::IntValue(50 + (n % 20) as i64),
                    ),
                    kv(
                        "gen_ai.response.id",
                        Value::StringValue(format!("resp-{n}")),
                    ),
                    kv(
                        "gen_ai.input.messages",
                        Value::StringValue(content.to_owned()),
                    ),
                ],
                ..Default::default()
            }
        })
        .collect();
    llmscope_core::test_util::traces_request("loadgen", spans)
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

enum Sender {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    Http(
        hyper_util::client::legacy::Client<
            hyper_util::client::legacy::connect::HttpConnector,
            Full<Bytes>,
        >,
        String,
        bool,
    ),
}

impl Sender {
    /// Sends one request; returns the spans the collector refused, or an error.
    async fn send(
        &mut self,
        request: ExportTraceServiceRequest,
        bearer: Option<&str>,
    ) -> Result<i64, String> {
        match self {
            Sender::Grpc(client) => {
                let mut request = tonic::Request::new(request);
                if let Some(bearer) = bearer {
                    let value = bearer.parse().map_err(|_| "the key is not ASCII")?;
                    request.metadata_mut().insert("authorization", value);
                }
                let response = client
                    .export(request)
                    .await
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
                Ok(response
                    .into_inner()
                    .partial_success
                    .map_or(0, |p| p.rejected_spans))
            }
            Sender::Http(client, url, json) => {
                let (body, content_type) = if *json {
                    (
                        serde_json::to_vec(&request).map_err(|e| e.to_string())?,
                        "application/json",
                    )
                } else {
                    (request.encode_to_vec(), "application/x-protobuf")
                };
                let mut req =
                    hyper::Request::post(url.as_str()).header("content-type", content_type);
                if let Some(bearer) = bearer {
                    req = req.header("authorization", bearer);
                }
                let req = req
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let response = client.request(req).await.map_err(|e| e.to_string())?;
                let status = response.status();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                if !status.is_success() {
                    return Err(format!("HTTP {status}"));
                }
                if *json {
                    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                    Ok(v["partialSuccess"]["rejectedSpans"].as_i64().unwrap_or(0))
                } else {
                    let r = ExportTraceServiceResponse::decode(&bytes[..])
                        .map_err(|e| e.to_string())?;
                    Ok(r.partial_success.map_or(0, |p| p.rejected_spans))
                }
            }
        }
    }
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Arc::new(Args::parse());
    let content = Arc::new(
        serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt_text_with_pii(args.content_bytes, args.pii_density)}]}])
            .to_string(),
    );
    let stats = Arc::new(Stats::default());
    let seq = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration);
    // Requests per second per worker when rate limited.
    let interval = (args.rate > 0).then(|| {
        let per_worker = args.rate as f64 / args.batch as f64 / args.concurrency as f64;
        Duration::from_secs_f64(1.0 / per_worker.max(1e-9))
    });
    let bearer = args.api_key.as_ref().map(|k| format!("Bearer {k}"));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let bearer = bearer.clone();
        let (args, content, stats, seq) = (
            Arc::clone(&args),
            Arc::clone(&content),
            Arc::clone(&stats),
            Arc::clone(&seq),
        );
        let mut sender = match args.protocol {
            Protocol::Grpc => {
                Sender::Grpc(TraceServiceClient::connect(args.endpoint.clone()).await?)
            }
            Protocol::HttpProto | Protocol::HttpJson => Sender::Http(
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http(),
                format!("{}/v1/traces", args.endpoint.trim_end_matches('/')),
                matches!(args.protocol, Protocol::HttpJson),
            ),
        };
        workers.push(tokio::spawn(async move {
            let mut next = Instant::now();
            while Instant::now() < deadline {
                if let Some(i) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += i;
                }
                let request = request(&args, seq.fetch_add(1, Ordering::Relaxed), &content);
                let n = args.batch as u64;
                let t = Instant::now();
                let result = sender.send(request, bearer.as_deref()).await;
                let us = t.elapsed().as_micros() as u64;
                stats.sent.fetch_add(n, Ordering::Relaxed);
                match result {
                    Ok(rejected) => {
                        stats
                            .accepted
                            .fetch_add(n - rejected.max(0) as u64, Ordering::Relaxed);
                        stats
                            .refused
                            .fetch_add(rejected.max(0) as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.refused.fetch_add(n, Ordering::Relaxed);
                        eprintln!("request refused: {e}");
                    }
                }
                stats.latencies_us.lock().await.push(us);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut lat = stats.latencies_us.lock().await.clone();
    lat.sort_unstable();
    let per_s = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / secs;
    println!(
        "protocol {:?}, {} s, {} spans/request, {} B content, PII {:.1}%, concurrency {}",
        args.protocol,
        args.duration,
        args.batch,
        args.content_bytes,
        args.pii_density * 100.0,
        args.concurrency
    );
    println!(
        "spans/s: sent {:.0}, accepted {:.0}, refused {:.0}; requests {}; latency ms p50 {:.2} p95 {:.2} p99 {:.2}",
        per_s(&stats.sent),
        per_s(&stats.accepted),
        per_s(&stats.refused),
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99)
    );
    Ok(())
}
