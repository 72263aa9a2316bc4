//! `llmscope-streambench`: many live-stream subscribers on a running collector.
//!
//! Opens `--subscribers` WebSockets to `/api/v1/stream` (spread over `--filters`, each a query
//! string), optionally `--stalled` more that never read, and for `--duration` seconds counts
//! what they receive and what they are told they lost. Delivery latency is measured on the
//! first `--sampled` subscribers, from each span's `start_time` (the load generator stamps it
//! when it builds the request) to its arrival. Run `llmscope-loadgen` beside it for the ingest
//! side; `benches/scripts/stream.sh` does both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(about = "Live-stream subscribers against a running LLMScope")]
struct Args {
    /// The query API's `host:port`.
    #[arg(long, default_value = "127.0.0.1:4320")]
    api: String,
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Subscribers that connect and never read.
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// Query strings the subscribers take in turn.
    #[arg(long, default_values_t = ["kind=llm_calls".to_owned()])]
    filters: Vec<String>,
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Subscribers whose every message's latency is recorded.
    #[arg(long, default_value_t = 20)]
    sampled: usize,
}

#[derive(Default)]
struct Totals {
    messages: AtomicU64,
    dropped: AtomicU64,
    closed: AtomicU64,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// Milliseconds from the span's `start_time` to now.
fn latency_ms(text: &str) -> Option<f64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let start = v["data"]["start_time"].as_str()?;
    let t =
        time::OffsetDateTime::parse(start, &time::format_description::well_known::Rfc3339).ok()?;
    Some((now_ns() - t.unix_timestamp_nanos()) as f64 / 1e6)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let totals = Arc::new(Totals::default());
    let samples = Arc::new(std::sync::Mutex::new(Vec::<f64>::new()));
    let connecting = Instant::now();
    let mut readers = Vec::new();
    let mut stalled = Vec::new();
    for i in 0..args.subscribers + args.stalled {
        let filter = &args.filters[i % args.filters.len()];
        let url = format!("ws://{}/api/v1/stream?{filter}", args.api);
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        if i >= args.subscribers {
            stalled.push(ws); // held open, never read
        } else {
            readers.push(ws);
        }
    }
    eprintln!(
        "{} subscribers and {} stalled connected in {:.1} s; listening for {} s",
        readers.len(),
        stalled.len(),
        connecting.elapsed().as_secs_f64(),
        args.duration
    );
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let mut tasks = Vec::new();
    for (i, ws) in readers.into_iter().enumerate() {
        let (totals, samples) = (Arc::clone(&totals), Arc::clone(&samples));
        let sampled = i < args.sampled;
        tasks.push(tokio::spawn(async move {
            let mut ws = ws;
            let mut mine = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let Ok(next) = tokio::time::timeout(left, ws.next()).await else {
                    break;
                };
                match next {
                    Some(Ok(Message::Text(t))) => {
                        if t.contains(r#""type":"dropped""#) {
                            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                            totals
                                .dropped
                                .fetch_add(v["count"].as_u64().unwrap_or(0), Ordering::Relaxed);
                        } else if t.contains(r#""type":"span""#) {
                            totals.messages.fetch_add(1, Ordering::Relaxed);
                            if sampled && let Some(ms) = latency_ms(&t) {
                                mine.push(ms);
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        totals.closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            samples.lock().expect("samples").extend(mine);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    // The stalled ones stay connected, unread, until the end.
    tokio::time::sleep_until(deadline.into()).await;
    let mut lat = samples.lock().expect("samples").clone();
    lat.sort_by(f64::total_cmp);
    println!(
        "subscribers {}, stalled {}: messages {} ({:.0}/s over {:.0} s), dropped (told) {}, closed {}; latency ms (sampled {}) p50 {:.1} p99 {:.1} max {:.1}",
        args.subscribers,
        stalled.len(),
        totals.messages.load(Ordering::Relaxed),
        totals.messages.load(Ordering::Relaxed) as f64 / args.duration as f64,
        args.duration,
        totals.dropped.load(Ordering::Relaxed),
        totals.closed.load(Ordering::Relaxed),
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
    );
    drop(stalled);
    Ok(())
}
