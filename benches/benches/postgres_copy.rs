//! Ingest into a local PostgreSQL through the `postgres` exporter: binary COPY into staging,
//! the deduplicating insert into the day's partition, and the rollup increments, per batch of
//! normalized, priced chat spans (~1 KiB of content each). Needs `LLMSCOPE_BENCH_POSTGRES_URL`
//! (or `LLMSCOPE_TEST_POSTGRES_URL`); says so and does nothing without one.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
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
    common::export_group(c, "postgres_copy", &runtime, &store, &[1_000, 5_000]);
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
