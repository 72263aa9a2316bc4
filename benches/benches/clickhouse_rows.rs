//! Encoding spans into the ClickHouse insert buffer (`RowBinaryWithNamesAndTypes`): from rows
//! already flattened, and from decoded OTLP (flattening included). Target: at least 500,000
//! spans/s per core into the buffer.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmscope_benches::{kv, prompt_text};
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::resource::v1::Resource;
use llmscope_core::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, BatchContext, Payload, Processor};
use llmscope_exporters::clickhouse::encode_spans;
use llmscope_exporters::record::span_records;
use llmscope_processors::cost::{Cost, CostConfig};
use llmscope_processors::normalize::Normalize;

/// `n` normalized, priced chat spans with ~1 KiB of content and the attributes OpenLLMetry sends.
fn resource_spans(n: usize) -> Vec<ResourceSpans> {
    let content = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt_text(900)}]}]).to_string();
    let spans = (0..n)
        .map(|i| {
            let start = 1_795_766_744_000_000_000 + i as u64 * 10_000_000;
            Span {
                trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                parent_span_id: 7u64.to_be_bytes().to_vec(),
                name: "openai.chat".into(),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 800_000_000,
                attributes: vec![
                    kv("gen_ai.operation.name", Value::StringValue("chat".into())),
                    kv("gen_ai.provider.name", Value::StringValue("openai".into())),
                    kv(
                        "gen_ai.request.model",
                        Value::StringValue("gpt-4o-mini".into()),
                    ),
                    kv(
                        "gen_ai.response.model",
                        Value::StringValue("gpt-4o-mini-2024-07-18".into()),
                    ),
                    kv(
                        "gen_ai.response.id",
                        Value::StringValue(format!("chatcmpl-{i}")),
                    ),
                    kv("gen_ai.usage.input_tokens", Value::IntValue(180)),
                    kv("gen_ai.usage.output_tokens", Value::IntValue(60)),
                    kv("gen_ai.usage.cache_read.input_tokens", Value::IntValue(20)),
                    kv("gen_ai.request.temperature", Value::DoubleValue(0.2)),
                    kv(
                        "gen_ai.openai.api_base",
                        Value::StringValue("https://api.openai.com/v1/".into()),
                    ),
                    kv("gen_ai.input.messages", Value::StringValue(content.clone())),
                    kv("session.id", Value::StringValue("sess-42".into())),
                ],
                ..Default::default()
            }
        })
        .collect();
    let mut batch = Batch::new(
        Payload::Traces(vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue("agent".into())),
                    kv(
                        "telemetry.sdk.language",
                        Value::StringValue("python".into()),
                    ),
                ],
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
    Normalize::default().process(&mut batch).expect("normalize");
    Cost::new(&CostConfig::default(), &Telemetry::default())
        .expect("cost")
        .process(&mut batch)
        .expect("cost");
    match batch.payload {
        Payload::Traces(rs) => rs,
        _ => unreachable!(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("clickhouse_rows");
    for n in [100usize, 1000] {
        let rs = resource_spans(n);
        let records = span_records("default", &rs);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("encode/{n}_spans"), |b| {
            b.iter(|| encode_spans(std::hint::black_box(&records)))
        });
        group.bench_function(format!("flatten_and_encode/{n}_spans"), |b| {
            b.iter(|| encode_spans(&span_records("default", std::hint::black_box(&rs))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
