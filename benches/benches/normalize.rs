//! Throughput of the `normalize` processor on recorded instrumentation output: one request of
//! each family repeated into small, medium and large batches.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use llmscope_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use llmscope_core::{Batch, BatchContext, Payload, Processor};
use llmscope_processors::normalize::Normalize;

const OPENLLMETRY: &str =
    include_str!("../../collector/core/testdata/genai/openllmetry-openai-chat.json");
const OPENINFERENCE: &str =
    include_str!("../../collector/core/testdata/genai/openinference-openai-chat.json");

/// `copies` copies of a recorded request in one batch (3 spans each).
fn batch(fixture: &str, copies: usize) -> Batch {
    let request: ExportTraceServiceRequest = serde_json::from_str(fixture).expect("fixture");
    let resource_spans = (0..copies)
        .flat_map(|_| request.resource_spans.clone())
        .collect();
    Batch::new(Payload::Traces(resource_spans), BatchContext::default())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    for (family, fixture) in [
        ("openllmetry", OPENLLMETRY),
        ("openinference", OPENINFERENCE),
    ] {
        for copies in [1usize, 100, 1000] {
            let input = batch(fixture, copies);
            let spans = input.payload.item_count() as u64;
            group.throughput(Throughput::Elements(spans));
            group.bench_function(format!("{family}/{spans}_spans"), |b| {
                let mut normalize = Normalize::default();
                b.iter_batched(
                    || input.clone(),
                    |mut batch| {
                        normalize.process(&mut batch).expect("process");
                        batch
                    },
                    BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
