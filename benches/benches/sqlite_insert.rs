//! Ingest into the embedded store through the `sqlite` exporter: one transaction per batch of
//! normalized, priced chat spans (~1 KiB of content each) into a database file in a temporary
//! folder, WAL mode, as the built-in default runs it.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmscope_benches::{priced_chat_batch, prompt_text};
use llmscope_core::{Batch, Exporter};
use llmscope_exporters::sqlite::{SqliteConfig, SqliteStore};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("bench.db"),
        ..Default::default()
    })
    .expect("store");
    let content = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt_text(900)}]}]).to_string();
    let mut group = c.benchmark_group("sqlite_insert");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for n in [1_000usize, 10_000] {
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

criterion_group!(benches, bench);
criterion_main!(benches);
