//! The whole processor chain as the collector runs it per request: protobuf decode, then
//! normalize, cost, redact and anomaly, on GenAI spans carrying about 1 KB of message content.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use llmscope::genai_metrics::GenAiMetrics;
use llmscope_benches::{kv, prompt_text};
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::trace::v1::Span;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, BatchContext, Payload, Processor};
use llmscope_processors::anomaly::{Anomaly, AnomalyConfig};
use llmscope_processors::cost::{Cost, CostConfig};
use llmscope_processors::normalize::{Normalize, NormalizeConfig};
use llmscope_processors::redact::{Redact, RedactConfig};
use llmscope_processors::{anomaly, cost, normalize, redact};
use prost::Message;

/// A request of `n` chat spans (OpenLLMetry-style attributes, deprecated token names so the
/// normalizer has work), each with ~1 KB of content holding ~1% PII.
fn request(n: usize) -> Vec<u8> {
    let spans = (0..n)
        .map(|i| {
            let prompt = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt_text(700)}]}]);
            let answer = serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": prompt_text(250)}]}]);
            let start = 1_795_766_744_000_000_000 + i as u64 * 10_000_000;
            Span {
                trace_id: (i as u128 + 1).to_be_bytes().to_vec(),
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                name: "openai.chat".into(),
                kind: 3,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 800_000_000 + (i as u64 % 7) * 10_000_000,
                attributes: vec![
                    kv("gen_ai.system", Value::StringValue("openai".into())),
                    kv("llm.request.type", Value::StringValue("chat".into())),
                    kv("gen_ai.request.model", Value::StringValue("gpt-4o-mini".into())),
                    kv("gen_ai.response.model", Value::StringValue("gpt-4o-mini-2024-07-18".into())),
                    kv("gen_ai.response.id", Value::StringValue(format!("chatcmpl-{i}"))),
                    kv("gen_ai.usage.prompt_tokens", Value::IntValue(180)),
                    kv("gen_ai.usage.completion_tokens", Value::IntValue(60)),
                    kv("gen_ai.input.messages", Value::StringValue(prompt.to_string())),
                    kv("gen_ai.output.messages", Value::StringValue(answer.to_string())),
                ],
                ..Default::default()
            }
        })
        .collect();
    llmscope_core::test_util::traces_request("agent", spans).encode_to_vec()
}

fn bench(c: &mut Criterion) {
    let telemetry = Telemetry::default();
    let mut chain: Vec<Box<dyn Processor>> = vec![
        Box::new(Normalize::new(NormalizeConfig::default())),
        Box::new(Cost::new(&CostConfig::default(), &telemetry).expect("cost")),
        Box::new(Redact::new(&RedactConfig::default(), &telemetry).expect("redact")),
        Box::new(Anomaly::new(AnomalyConfig::default(), &telemetry)),
    ];
    let mut group = c.benchmark_group("pipeline");
    for n in [1usize, 100, 1000] {
        let bytes = request(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("{n}_spans_{}KiB", bytes.len() / 1024), |b| {
            b.iter(|| {
                let request = ExportTraceServiceRequest::decode(&bytes[..]).expect("decode");
                let mut batch = Batch::new(
                    Payload::Traces(request.resource_spans),
                    BatchContext::default(),
                );
                for p in chain.iter_mut() {
                    p.process(&mut batch).expect("process");
                }
                batch
            })
        });
    }
    group.finish();

    // Each stage alone on decoded batches, to show where the time goes.
    let bytes = request(100);
    let decoded = || {
        let request = ExportTraceServiceRequest::decode(&bytes[..]).expect("decode");
        Batch::new(
            Payload::Traces(request.resource_spans),
            BatchContext::default(),
        )
    };
    let mut stages = c.benchmark_group("pipeline_stage");
    stages.throughput(Throughput::Elements(100));
    stages.bench_function("decode", |b| b.iter(decoded));
    let names = ["normalize", "cost", "redact", "anomaly"];
    for i in 0..chain.len() {
        let mut input = decoded();
        for p in chain[..i].iter_mut() {
            p.process(&mut input).expect("process");
        }
        stages.bench_function(names[i], |b| {
            b.iter_batched(
                || input.clone(),
                |mut batch| {
                    chain[i].process(&mut batch).expect("process");
                    batch
                },
                criterion::BatchSize::LargeInput,
            )
        });
    }
    // The GenAI metrics' tap on the processed batch, each call new (fresh response ids).
    let mut processed = decoded();
    for p in chain.iter_mut() {
        p.process(&mut processed).expect("process");
    }
    let metrics = GenAiMetrics::start(Default::default(), &telemetry);
    let mut round = 0u64;
    stages.bench_function("genai_metrics", |b| {
        // Batches made (and dropped) outside the timing: only counting is measured.
        b.iter_custom(|iters| {
            let batches: Vec<Batch> = (0..iters)
                .map(|_| {
                    round += 1;
                    let mut batch = processed.clone();
                    if let Payload::Traces(rs) = &mut batch.payload {
                        let spans = rs.iter_mut().flat_map(|r| &mut r.scope_spans);
                        for (i, span) in spans.flat_map(|s| &mut s.spans).enumerate() {
                            let id = Value::StringValue(format!("{round}-{i}"));
                            llmscope_core::attr::set(
                                &mut span.attributes,
                                "gen_ai.response.id",
                                id,
                            );
                        }
                    }
                    batch
                })
                .collect();
            let start = std::time::Instant::now();
            for batch in &batches {
                metrics.record(batch);
            }
            start.elapsed()
        })
    });
    stages.finish();
    threads(c, &bytes);
}

/// Two threads sending requests of 100 spans into one pipeline (normalize, cost, redact,
/// anomaly; no exporter), with one processor chain and with two: what running requests side by
/// side buys on this machine's two cores.
fn threads(c: &mut Criterion, bytes: &[u8]) {
    use llmscope::config::ProcessorConfig;
    use llmscope::pipeline::{Consumer, Pipeline};
    use llmscope::queue::MemoryQueue;

    const PER_THREAD: usize = 20;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let configs = [
        (
            "normalize",
            ProcessorConfig::of::<normalize::Factory>(NormalizeConfig::default()),
        ),
        (
            "cost",
            ProcessorConfig::of::<cost::Factory>(CostConfig::default()),
        ),
        (
            "redact",
            ProcessorConfig::of::<redact::Factory>(RedactConfig::default()),
        ),
        (
            "anomaly",
            ProcessorConfig::of::<anomaly::Factory>(AnomalyConfig::default()),
        ),
    ];
    let configs: Vec<_> = configs.iter().map(|(id, c)| (*id, c)).collect();
    let mut group = c.benchmark_group("pipeline_threads");
    group.throughput(Throughput::Elements((2 * PER_THREAD * 100) as u64));
    for chains in [1usize, 2] {
        let telemetry = Telemetry::default();
        let chain_set = llmscope::pipeline::chains(&configs, chains, &telemetry).expect("chains");
        let queue = MemoryQueue::new(Vec::new(), std::time::Duration::from_secs(1));
        let pipeline =
            std::sync::Arc::new(Pipeline::new("traces".into(), chain_set, queue, telemetry));
        group.bench_function(format!("2_threads_{chains}_chains"), |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let batches: Vec<Vec<Batch>> = (0..2)
                        .map(|_| {
                            (0..PER_THREAD)
                                .map(|_| {
                                    let request =
                                        ExportTraceServiceRequest::decode(bytes).expect("decode");
                                    Batch::new(
                                        Payload::Traces(request.resource_spans),
                                        BatchContext::default(),
                                    )
                                })
                                .collect()
                        })
                        .collect();
                    let start = std::time::Instant::now();
                    runtime.block_on(async {
                        let tasks: Vec<_> = batches
                            .into_iter()
                            .map(|mine| {
                                let pipeline = std::sync::Arc::clone(&pipeline);
                                tokio::spawn(async move {
                                    for batch in mine {
                                        pipeline.consume(batch).await.expect("accepted");
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("task");
                        }
                    });
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
