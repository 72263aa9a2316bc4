//! Ingest into the embedded store through the `sqlite` exporter: one transaction per batch of
//! normalized, priced chat spans (~1 KiB of content each) into a database file in a temporary
//! folder, WAL mode, as the built-in default runs it; then the same into a database encrypted
//! with SQLCipher (`encryption_key`).

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use llmscope_core::config::Secret;
use llmscope_exporters::sqlite::{SqliteConfig, SqliteStore};

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig {
        path: dir.path().join("bench.db"),
        ..Default::default()
    })
    .expect("store");
    common::export_group(c, "sqlite_insert", &runtime, &store, &[1_000, 10_000]);

    let encrypted = SqliteStore::open(SqliteConfig {
        path: dir.path().join("encrypted.db"),
        encryption_key: Secret::new("42".repeat(32)),
        ..Default::default()
    })
    .expect("encrypted store");
    common::export_group(
        c,
        "sqlite_insert_encrypted",
        &runtime,
        &encrypted,
        &[1_000, 10_000],
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
