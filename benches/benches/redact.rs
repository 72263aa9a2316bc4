//! Throughput of the `redact` scanner on realistic prompt text (mixed ASCII and non-ASCII, ~1%
//! PII), and the cost of the processor on a span with no content.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use llmscope_benches::prompt_text;
use llmscope_core::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use llmscope_core::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, BatchContext, Payload, Processor};
use llmscope_processors::redact::{Redact, RedactConfig, Scanner};

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let config = RedactConfig::default();
    let scanner = Scanner::new(&config).expect("scanner");
    let mut group = c.benchmark_group("redact_text");
    for size in [1_024usize, 64 * 1024, 1024 * 1024] {
        let text = prompt_text(size);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{size}_bytes"), |b| {
            b.iter(|| scanner.redact(std::hint::black_box(&text)))
        });
    }
    group.finish();

    // The same text as GenAI content: a JSON message list, redacted leaf by leaf.
    let mut group = c.benchmark_group("redact_json_content");
    for size in [1_024usize, 64 * 1024] {
        let doc = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt_text(size)}]}]).to_string();
        group.throughput(Throughput::Bytes(doc.len() as u64));
        group.bench_function(format!("{size}_bytes_scan"), |b| {
            b.iter(|| scanner.find(std::hint::black_box(&doc)))
        });
    }
    group.finish();

    let span = Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: "GET /api/orders".into(),
        attributes: [
            ("http.request.method", "GET"),
            ("url.full", "https://shop.example/api/orders?id=7"),
            ("http.response.status_code", "200"),
            ("server.address", "shop.example"),
            ("gen_ai.request.model", "gpt-4o-mini"),
            ("gen_ai.operation.name", "chat"),
            ("gen_ai.provider.name", "openai"),
            ("user.id", "user-7"),
            ("session.id", "sess-42"),
            ("service.version", "1.2.3"),
        ]
        .iter()
        .map(|(k, v)| kv(k, v))
        .collect(),
        ..Default::default()
    };
    let batch = Batch::new(
        Payload::Traces(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }]),
        BatchContext::default(),
    );
    let mut redact = Redact::new(&config, &Telemetry::default()).expect("redact");
    let mut group = c.benchmark_group("redact_span");
    group.throughput(Throughput::Elements(1));
    group.bench_function("no_content_10_attributes", |b| {
        b.iter_batched(
            || batch.clone(),
            |mut batch| {
                redact.process(&mut batch).expect("process");
                batch
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
