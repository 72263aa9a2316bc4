//! Ingest into the embedded store through the `sqlite` exporter: one transaction per batch of
//! normalized, priced chat spans (~1 KiB of content each) into a database file in a temporary
//! folder, WAL mode, as the built-in default runs it.

mod common;

use criterion::{Criterion, criterion_group, criterion_main};
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
