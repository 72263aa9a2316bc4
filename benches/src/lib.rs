//! LLMScope benchmarks (`cargo bench -p llmscope-benches`); results in `benches/README.md`.
//! This library holds the synthetic inputs the benches share (requests are wrapped by
//! `llmscope_core::test_util::traces_request`).

pub mod stored;

use std::sync::atomic::{AtomicU64, Ordering};

use llmscope_core::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use llmscope_core::otlp::trace::v1::Span;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::{Batch, BatchContext, Payload, Processor};
use llmscope_processors::cost::{Cost, CostConfig};
use llmscope_processors::normalize::Normalize;

/// An attribute.
pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// Realistic prompt text of about `bytes` bytes: English prose with accented words, CJK, emoji
/// and typographic punctuation, and about 1% of its bytes PII (emails, phone numbers, card
/// numbers, IP addresses). Deterministic.
pub fn prompt_text(bytes: usize) -> String {
    prompt_text_with_pii(bytes, 0.01)
}

/// [`prompt_text`] with `density` of its bytes PII (0.01 is 1%).
pub fn prompt_text_with_pii(bytes: usize, density: f64) -> String {
    const WORDS: &[&str] = &[
        "the",
        "customer",
        "asked",
        "about",
        "their",
        "order",
        "and",
        "whether",
        "delivery",
        "could",
        "be",
        "moved",
        "to",
        "next",
        "week",
        "please",
        "summarize",
        "conversation",
        "below",
        "with",
        "attention",
        "details",
        "café",
        "naïve",
        "résumé",
        "東京",
        "について",
        "–",
        "“quoted”",
        "😀",
        "Привет",
        "analysis",
        "shipping",
        "refund",
        "policy",
        "account",
        "support",
        "ticket",
    ];
    const PII: &[&str] = &[
        "jane.doe@example.com",
        "+1 415 555 0100",
        "4111 1111 1111 1111",
        "192.168.1.20",
        "john.smith@example.org",
    ];
    let mut out = String::with_capacity(bytes + 64);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut pii_bytes = 0usize;
    while out.len() < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Keep PII near `density` of the bytes written so far.
        if density > 0.0 && (pii_bytes as f64) < density * out.len() as f64 {
            let p = PII[(state % PII.len() as u64) as usize];
            out.push_str(p);
            pii_bytes += p.len();
        } else {
            out.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
        }
        out.push(if state.is_multiple_of(11) { '\n' } else { ' ' });
    }
    out
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// `n` chat spans as the exporters get them (normalized and priced), each carrying `content`
/// as its input messages; span ids never repeat within the process.
pub fn priced_chat_batch(n: usize, content: &str) -> Batch {
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
    let request = llmscope_core::test_util::traces_request("bench", spans);
    let mut b = Batch::new(
        Payload::Traces(request.resource_spans),
        BatchContext::default(),
    );
    Normalize::default().process(&mut b).expect("normalize");
    Cost::new(&CostConfig::default(), &Telemetry::default())
        .expect("cost")
        .process(&mut b)
        .expect("cost");
    b
}
