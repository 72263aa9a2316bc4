//! Ingest into a local PostgreSQL through the `postgres` exporter: binary COPY into staging,
//! the deduplicating insert into the day's partition, and the rollup increments, per batch of
//! normalized, priced chat spans (~1 KiB of content each). Needs `LLMSCOPE_BENCH_POSTGRES_URL`
//! (or `LLMSCOPE_TEST_POSTGRES_URL`); says so and does nothing without one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmscope_benches::{kv, prompt_text};
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::resource::v1::Resource;
use llmscope_core::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, BatchContext, Exporter, Payload, Processor};
use llmscope_exporters::postgres::{PostgresConfig, PostgresStore};
use llmscope_processors::cost::{Cost, CostConfig};
use llmscope_processors::normalize::Normalize;

static SEQ: AtomicU64 = AtomicU64::new(1);

fn batch(n: usize, content: &str) -> Batch {
    let base = SEQ.fetch_add(n as u64, Ordering::Relaxed);
    let spans = (0..n as u64)
        .map(|i| {
            let id = base + i;
            let start = 1_795_766_744_000_000_000 + id * 1_000_000;
            Span {
                trace_id: (u128::from(id) << 16 | 7).to_be_bytes().to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                name: "chat".into(),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 700_000_000,
                attributes: vec![
                    kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                    kv("gen_ai.provider.name", Value::StringValue("openai".into())),
                    kv(
                        "gen_ai.request.model",
                        Value::StringValue(
                            ["gpt-4o-mini", "gpt-4o", "o3-mini"][(id % 3) as usize].into(),
                        ),
                    ),
                    kv("gen_ai.response.id", Value::StringValue(format!("r-{id}"))),
                    kv("gen_ai.usage.input_tokens", Value::IntValue(180)),
                    kv("gen_ai.usage.output_tokens", Value::IntValue(60)),
                    kv(
                        "gen_ai.input.messages",
                        Value::StringValue(content.to_owned()),
                    ),
                ],
                ..Default::default()
            }
        })
        .collect();
    let mut b = Batch::new(
        Payload::Traces(vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("bench".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }]),
        BatchContext::default(),
    );
    Normalize::default().process(&mut b).expect("normalize");
    Cost::new(&CostConfig::default(), &Telemetry::default())
        .expect("cost")
        .process(&mut b)
        .expect("cost");
    b
}

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
                let batches: Vec<Batch> = (0..iters).map(|_| batch(n, &content)).collect();
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
