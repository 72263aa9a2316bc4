//! LLMScope benchmarks (`cargo bench -p llmscope-benches`); results in `benches/README.md`.
//! This library holds the synthetic inputs the benches share (requests are wrapped by
//! `llmscope_core::test_util::traces_request`).

use llmscope_core::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};

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
