//! `llmscope-unauthenticated`: what unauthenticated OTLP/gRPC traffic costs a collector that
//! requires API keys. Opens one HTTP/2 connection and sends `--streams` export calls at once,
//! each a `--mib` MiB message (gzip-compressed zeros with `--gzip`, a bomb that expands to that
//! size) with a wrong key, `--rounds` times; prints how each was answered. Pair it with the
//! collector's RSS (`benches/scripts/unauthenticated.sh`).

use std::time::Instant;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};

#[derive(Parser)]
struct Args {
    /// The collector's OTLP/gRPC `host:port`.
    #[arg(long, default_value = "127.0.0.1:4317")]
    endpoint: String,
    #[arg(long, default_value_t = 48)]
    streams: usize,
    #[arg(long, default_value_t = 18)]
    mib: usize,
    #[arg(long)]
    gzip: bool,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn frame(args: &Args) -> Bytes {
    let message = vec![0u8; args.mib << 20];
    let payload = if args.gzip {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&message).expect("gzip");
        encoder.finish().expect("gzip")
    } else {
        message
    };
    let mut out = vec![u8::from(args.gzip)];
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&payload);
    Bytes::from(out)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let body = frame(&args);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    for round in 1..=args.rounds {
        let started = Instant::now();
        let calls = (0..args.streams).map(|_| {
            let mut request = hyper::Request::post(format!(
                "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                args.endpoint
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", "Bearer lls_not_a_key");
            if args.gzip {
                request = request.header("grpc-encoding", "gzip");
            }
            let request = request.body(Full::new(body.clone())).expect("request");
            let client = client.clone();
            async move {
                let response = client.request(request).await.map_err(|e| e.to_string())?;
                let status = response
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let trailers = response.into_body().collect().await.ok().and_then(|b| {
                    b.trailers()
                        .and_then(|t| t.get("grpc-status")?.to_str().ok().map(str::to_owned))
                });
                Ok::<_, String>(status.or(trailers).unwrap_or_default())
            }
        });
        let mut running = tokio::task::JoinSet::new();
        for call in calls {
            running.spawn(call);
        }
        let answers = running.join_all().await;
        let mut counts = std::collections::BTreeMap::new();
        for answer in answers {
            *counts
                .entry(answer.unwrap_or_else(|e| format!("error: {e}")))
                .or_insert(0) += 1;
        }
        println!(
            "round {round}: {} streams of {} MiB{} answered in {:?}: grpc-status {counts:?}",
            args.streams,
            args.mib,
            if args.gzip { " (gzip)" } else { "" },
            started.elapsed()
        );
    }
}
