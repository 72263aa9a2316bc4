//! Worked examples, one per provider, computed by hand from the published per-million prices
//! in `prices.yaml` (shown in each comment).

use llmscope_core::semconv as sc;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::test_util::{kv, span, spans_of, traces};
use llmscope_core::{Processor, attr};

use super::*;

fn call(
    model: &str,
    provider: &str,
    usage: [i64; 5],
) -> Vec<llmscope_core::otlp::common::v1::KeyValue> {
    let [input, output, cache_read, cache_write, reasoning] = usage;
    let mut attrs = vec![
        kv(sc::OPERATION_NAME, "chat"),
        kv(sc::PROVIDER_NAME, provider),
        kv(sc::REQUEST_MODEL, model),
        kv(sc::USAGE_INPUT_TOKENS, input),
        kv(sc::USAGE_OUTPUT_TOKENS, output),
    ];
    for (key, n) in [
        (sc::USAGE_CACHE_READ_INPUT_TOKENS, cache_read),
        (sc::USAGE_CACHE_CREATION_INPUT_TOKENS, cache_write),
        (sc::USAGE_REASONING_OUTPUT_TOKENS, reasoning),
    ] {
        if n > 0 {
            attrs.push(kv(key, n));
        }
    }
    attrs
}

fn priced(
    attrs: Vec<llmscope_core::otlp::common::v1::KeyValue>,
) -> Vec<llmscope_core::otlp::common::v1::KeyValue> {
    priced_with(&CostConfig::default(), attrs)
}

fn priced_with(
    config: &CostConfig,
    attrs: Vec<llmscope_core::otlp::common::v1::KeyValue>,
) -> Vec<llmscope_core::otlp::common::v1::KeyValue> {
    let mut batch = traces("svc", vec![span(1, 1, "call", attrs)]);
    Cost::new(config, &Telemetry::default())
        .expect("cost")
        .process(&mut batch)
        .expect("process");
    spans_of(&batch)[0].attributes.clone()
}

fn assert_usd(
    attrs: &[llmscope_core::otlp::common::v1::KeyValue],
    input: f64,
    output: f64,
    case: &str,
) {
    let got = |k| attr::get_f64(attrs, k).unwrap_or_else(|| panic!("{case}: no {k}"));
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(
        close(got(sc::COST_INPUT_USD), input),
        "{case}: input {} != {input}",
        got(sc::COST_INPUT_USD)
    );
    assert!(
        close(got(sc::COST_OUTPUT_USD), output),
        "{case}: output {} != {output}",
        got(sc::COST_OUTPUT_USD)
    );
    assert!(
        close(got(sc::COST_TOTAL_USD), input + output),
        "{case}: total"
    );
}

#[test]
fn worked_examples_per_provider() {
    // [input (inclusive), output (inclusive), cache read, cache write, reasoning]
    let cases: [(&str, &str, [i64; 5], f64, f64); 8] = [
        // gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out.
        // 32 uncached * 0.15 + 10 cached * 0.075 = 5.55e-6; 17 * 0.60 = 10.2e-6.
        (
            "gpt-4o-mini-2024-07-18",
            "openai",
            [42, 17, 10, 0, 0],
            5.55e-6,
            10.2e-6,
        ),
        // claude-3-5-haiku: $0.80 in, $1.00 cache write, $0.08 cache read, $4.00 out.
        // 200 * 0.80 + 600 * 0.08 + 200 * 1.00 = 408e-6; 500 * 4.00 = 2000e-6.
        (
            "claude-3-5-haiku-20241022",
            "anthropic",
            [1000, 500, 600, 200, 0],
            408e-6,
            2000e-6,
        ),
        // gemini-2.5-pro: $1.25 in, $10 out (thinking tokens are output).
        // 10,000 * 1.25 = 0.0125; 2,000 * 10 = 0.02.
        (
            "gemini-2.5-pro",
            "gcp.gemini",
            [10_000, 2_000, 0, 0, 1_500],
            0.0125,
            0.02,
        ),
        // o3-mini: $1.10 in, $4.40 out; reasoning priced as output.
        (
            "o3-mini-2025-01-31",
            "openai",
            [1_000, 3_000, 0, 0, 2_500],
            0.0011,
            0.0132,
        ),
        // mistral-large: $2 in, $6 out.
        (
            "mistral-large-latest",
            "mistral_ai",
            [2_000, 300, 0, 0, 0],
            0.004,
            0.0018,
        ),
        // deepseek-chat: $0.28 cache miss, $0.028 cache hit, $0.42 out.
        // 1,000 * 0.28 + 4,000 * 0.028 = 392e-6; 1,000 * 0.42 = 420e-6.
        (
            "deepseek-chat",
            "deepseek",
            [5_000, 1_000, 4_000, 0, 0],
            392e-6,
            420e-6,
        ),
        // Llama 3.1 70B on Bedrock: $0.72 in, $0.72 out.
        (
            "meta.llama3-1-70b-instruct-v1:0",
            "aws.bedrock",
            [1_000, 1_000, 0, 0, 0],
            720e-6,
            720e-6,
        ),
        // Amazon Nova Pro on Bedrock: $0.80 in, $3.20 out.
        (
            "amazon.nova-pro-v1:0",
            "aws.bedrock",
            [10_000, 1_000, 0, 0, 0],
            0.008,
            0.0032,
        ),
    ];
    for (model, provider, usage, input, output) in cases {
        assert_usd(&priced(call(model, provider, usage)), input, output, model);
    }
}

#[test]
fn reasoning_priced_apart_and_the_response_model_preferred() {
    let config = CostConfig {
        models: vec![ModelPrice {
            provider: None,
            model: "thinker".into(),
            input: 1.0,
            output: 2.0,
            cache_read: None,
            cache_write: None,
            reasoning: Some(8.0),
        }],
        ..Default::default()
    };
    // 1,000 output of which 400 reasoning: 600 * 2 + 400 * 8 = 4,400e-6.
    assert_usd(
        &priced_with(&config, call("thinker", "x", [1_000, 1_000, 0, 0, 400])),
        1e-3,
        4.4e-3,
        "thinker",
    );

    let mut attrs = call("gpt-4o", "openai", [1_000_000, 0, 0, 0, 0]);
    attrs.push(kv(sc::RESPONSE_MODEL, "gpt-4o-mini-2024-07-18"));
    assert_usd(&priced(attrs), 0.15, 0.0, "response model");
}

#[test]
fn unknown_models_are_flagged_and_counted_and_provided_costs_kept() {
    let telemetry = Telemetry::default();
    let mut cost = Cost::new(&CostConfig::default(), &telemetry).expect("cost");
    let mut attrs = call("my-finetune-v7", "openai", [100, 10, 0, 0, 0]);
    attrs.push(kv("gen_ai.usage.cost", 0.5));
    let mut batch = traces(
        "svc",
        vec![
            span(1, 1, "call", attrs),
            span(1, 2, "http", vec![kv("http.method", "GET")]),
        ],
    );
    cost.process(&mut batch).expect("process");
    let spans = spans_of(&batch);
    let a = &spans[0].attributes;
    assert!(!attr::has(a, sc::COST_TOTAL_USD));
    assert!(matches!(
        attr::get(a, UNKNOWN_MODEL),
        Some(Value::BoolValue(true))
    ));
    assert_eq!(attr::get_f64(a, PROVIDED_USD), Some(0.5));
    assert_eq!(
        attr::get_i64(a, sc::USAGE_INPUT_TOKENS),
        Some(100),
        "tokens stay"
    );
    assert_eq!(spans[1].attributes.len(), 1, "other spans untouched");
    assert_eq!(
        telemetry.value("llmscope_cost_unknown_model_spans_total", &[]),
        1
    );
}

#[test]
fn prices_come_from_a_file_and_inline_entries_override_it() {
    let dir = std::env::temp_dir().join(format!("llmscope-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("prices.yaml");
    std::fs::write(&file, "taken: '2026-11-01'\nmodels:\n  - {model: gpt-4o-mini, input: 1.0, output: 1.0}\n  - {model: house-model, input: 3.0, output: 3.0}\n").expect("write");
    let config = CostConfig {
        prices_file: Some(file.clone()),
        models: vec![ModelPrice {
            provider: None,
            model: "house-model".into(),
            input: 5.0,
            output: 5.0,
            cache_read: None,
            cache_write: None,
            reasoning: None,
        }],
        ..Default::default()
    };
    assert!(config.validate().is_ok());
    assert_usd(
        &priced_with(
            &config,
            call("gpt-4o-mini", "openai", [1_000_000, 0, 0, 0, 0]),
        ),
        1.0,
        0.0,
        "file",
    );
    assert_usd(
        &priced_with(&config, call("house-model", "x", [1_000_000, 0, 0, 0, 0])),
        5.0,
        0.0,
        "inline",
    );
    let missing = CostConfig {
        prices_file: Some(dir.join("nope.yaml")),
        ..Default::default()
    };
    assert!(
        missing
            .validate()
            .unwrap_err()
            .starts_with("prices_file: cannot read")
    );
    let _ = std::fs::remove_dir_all(dir);
}
