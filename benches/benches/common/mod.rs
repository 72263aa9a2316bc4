//! What the store benches share: batches of priced chat spans through one exporter.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use llmscope_benches::{priced_chat_batch, prompt_text};
use llmscope_core::{Batch, Exporter};

/// Criterion group `name`: for each size in `sizes`, batches of that many normalized, priced
/// chat spans (~1 KiB of message content each) through `store.export`, one after another; the
/// batches are built outside the measured time.
pub fn export_group<E: Exporter>(
    c: &mut Criterion,
    name: &str,
    runtime: &tokio::runtime::Runtime,
    store: &E,
    sizes: &[usize],
) {
    let content = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt_text(900)}]}]).to_string();
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for &n in sizes {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}_spans"), |b| {
            b.iter_custom(|iters| {
                let batches: Vec<Batch> =
                    (0..iters).map(|_| priced_chat_batch(n, &content)).collect();
                let start = Instant::now();
                runtime.block_on(async {
                    for b in &batches {
                        store.export(b).await.expect("export");
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}
