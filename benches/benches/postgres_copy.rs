//! Ingest into a local PostgreSQL through the `postgres` exporter: binary COPY into staging,
//! the deduplicating insert into the day's partition, and the rollup increments, per batch of
//! normalized, priced chat spans (~1 KiB of content each). Needs `LLMSCOPE_BENCH_POSTGRES_URL`
//! (or `LLMSCOPE_TEST_POSTGRES_URL`); says so and does nothing without one.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmscope_benches::{priced_chat_batch, prompt_text};
use llmscope_core::{Batch, Exporter};
use llmscope_exporters::postgres::{PostgresConfig, PostgresStore};

fn bench(c: &mut Criterion) {
    let Some(url) = std::env::var("LLMSCOPE_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("LLMSCOPE_TEST_POSTGRES_URL"))
        .ok()
    else {
        eprintln!(
            "postgres_copy: set LLMSCOPE_BENCH_POSTGRES_URL to a PostgreSQL to run this bench"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = format!("llmscope_bench_{}", std::process::id());
    let store = runtime.block_on(async {
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .expect("create database");
        let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
        PostgresStore::open(PostgresConfig {
            url: format!("{base}/{database}"),
            ..Default::default()
        })
        .await
        .expect("store")
    });
    let content = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt_text(900)}]}]).to_string();
    let mut group = c.benchmark_group("postgres_copy");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for n in [1_000usize, 5_000] {
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
    runtime.block_on(async {
        store.pool().close();
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
