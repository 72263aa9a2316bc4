use llmscope_core::semconv as sc;
use llmscope_core::test_util::{kv, span, traces};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::Status;

use super::*;
use crate::config::Signal;

fn call(model: &str, attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    let mut all = vec![
        kv(sc::OPERATION_NAME, "chat"),
        kv(sc::PROVIDER_NAME, "openai"),
        kv(sc::REQUEST_MODEL, model),
        kv(sc::RESPONSE_MODEL, format!("{model}-2024").as_str()),
    ];
    all.extend(attrs);
    all
}

/// The value of the sample `name{labels}` on a rendered page (labels as written there).
fn sample(page: &str, name_and_labels: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(|v| v.parse().expect("a number"))
}

const BASE: &str = "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o\",gen_ai_response_model=\"gpt-4o-2024\",service_name=\"app\"";

#[test]
fn a_call_reported_by_two_spans_counts_once_with_its_largest_usage() {
    let telemetry = Telemetry::default();
    let m = GenAiMetrics::start(GenAiMetricsConfig::default(), &telemetry);
    // A wrapper span without usage, then the client span with it, same response id; then an
    // embeddings call that failed, and a tool span that is no model call.
    let mut failed = span(2, 3, "embeddings", {
        let mut a = call("gpt-4o", vec![kv("error.type", "RateLimitError")]);
        a[0] = kv(sc::OPERATION_NAME, "embeddings");
        a
    });
    failed.status = Some(Status {
        code: 2,
        ..Default::default()
    });
    m.record(&traces(
        "app",
        vec![
            span(
                1,
                1,
                "wrapper",
                call("gpt-4o", vec![kv(sc::RESPONSE_ID, "r1")]),
            ),
            failed,
            span(
                1,
                9,
                "tool",
                vec![
                    kv(sc::OPERATION_NAME, "execute_tool"),
                    kv(sc::REQUEST_MODEL, "gpt-4o"),
                ],
            ),
        ],
    ));
    m.record(&traces(
        "app",
        vec![span(
            1,
            2,
            "chat gpt-4o",
            call(
                "gpt-4o",
                vec![
                    kv(sc::RESPONSE_ID, "r1"),
                    kv(sc::USAGE_INPUT_TOKENS, 1200i64),
                    kv(sc::USAGE_OUTPUT_TOKENS, 30i64),
                    kv(sc::USAGE_CACHE_READ_INPUT_TOKENS, 1000i64),
                    kv(sc::USAGE_REASONING_OUTPUT_TOKENS, 12i64),
                    kv(sc::COST_TOTAL_USD, 0.0042),
                ],
            ),
        )],
    ));
    // The same span again (a client retrying its export): nothing changes.
    m.record(&traces(
        "app",
        vec![span(
            1,
            2,
            "chat gpt-4o",
            call(
                "gpt-4o",
                vec![
                    kv(sc::RESPONSE_ID, "r1"),
                    kv(sc::USAGE_INPUT_TOKENS, 1200i64),
                ],
            ),
        )],
    ));
    let page = telemetry.render();
    let duration =
        format!("gen_ai_client_operation_duration_seconds_count{{{BASE},error_type=\"\"}}");
    assert_eq!(sample(&page, &duration), Some(1.0), "{page}");
    let le = format!(
        "gen_ai_client_operation_duration_seconds_bucket{{{BASE},error_type=\"\",le=\"0.64\"}}"
    );
    assert_eq!(
        sample(&page, &le),
        Some(1.0),
        "0.5 s is in the 0.64 bucket\n{page}"
    );
    let failed = "gen_ai_client_operation_duration_seconds_count{gen_ai_operation_name=\"embeddings\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"gpt-4o\",gen_ai_response_model=\"gpt-4o-2024\",service_name=\"app\",error_type=\"RateLimitError\"}";
    assert_eq!(sample(&page, failed), Some(1.0), "{page}");
    let input = format!("gen_ai_client_token_usage_sum{{{BASE},gen_ai_token_type=\"input\"}}");
    let input_count =
        format!("gen_ai_client_token_usage_count{{{BASE},gen_ai_token_type=\"input\"}}");
    let output = format!("gen_ai_client_token_usage_sum{{{BASE},gen_ai_token_type=\"output\"}}");
    let bucket = format!(
        "gen_ai_client_token_usage_bucket{{{BASE},gen_ai_token_type=\"input\",le=\"1024\"}}"
    );
    assert_eq!(sample(&page, &input), Some(1200.0), "{page}");
    assert_eq!(sample(&page, &input_count), Some(1.0), "{page}");
    assert_eq!(sample(&page, &bucket), Some(0.0), "{page}");
    assert_eq!(sample(&page, &output), Some(30.0), "{page}");
    for (name, value) in [
        ("llmscope_gen_ai_cost_usd_total", 0.0042),
        (
            "llmscope_gen_ai_usage_cache_read_input_tokens_total",
            1000.0,
        ),
        ("llmscope_gen_ai_usage_reasoning_output_tokens_total", 12.0),
    ] {
        assert_eq!(
            sample(&page, &format!("{name}{{{BASE}}}")),
            Some(value),
            "{page}"
        );
    }
    assert!(!page.contains("execute_tool"), "{page}");
    assert!(
        page.contains("# TYPE gen_ai_client_token_usage histogram"),
        "{page}"
    );
}

#[test]
fn ten_thousand_users_stay_within_the_series_limit_and_keep_the_totals() {
    let telemetry = Telemetry::default();
    let config = GenAiMetricsConfig {
        dimensions: vec!["user".into()],
        series_limit: 1000,
        ..Default::default()
    };
    let m = GenAiMetrics::start(config, &telemetry);
    for chunk in 0..100u32 {
        let spans = (0..100u32)
            .map(|i| {
                let user = format!("user-{}", chunk * 100 + i);
                let mut s = span(
                    1,
                    1,
                    "chat",
                    call(
                        "gpt-4o",
                        vec![
                            kv(sc::USER_ID, user.as_str()),
                            kv(sc::USAGE_INPUT_TOKENS, 10i64),
                            kv(sc::USAGE_OUTPUT_TOKENS, 2i64),
                            kv(sc::COST_TOTAL_USD, 0.5),
                        ],
                    ),
                );
                s.span_id = (chunk * 100 + i).to_be_bytes().repeat(2);
                s
            })
            .collect();
        m.record(&traces("app", spans));
    }
    let s = m.state();
    // Token usage: 1000 label sets (500 users × input/output) plus one overflow per type.
    assert_eq!(
        (s.token_usage.series.len(), s.token_usage.overflow.len()),
        (1000, 2)
    );
    assert_eq!(
        (s.duration.series.len(), s.duration.overflow.len()),
        (1000, 1)
    );
    assert_eq!(s.cost.series_count(), 1001);
    let cost: f64 = s.cost.series.values().chain(s.cost.overflow.values()).sum();
    assert!((cost - 5000.0).abs() < 1e-6, "{cost}");
    let calls: u64 = s
        .duration
        .series
        .values()
        .chain(s.duration.overflow.values())
        .map(|h| h.count)
        .sum();
    assert_eq!(calls, 10_000);
    drop(s);
    let page = telemetry.render();
    assert_eq!(
        sample(
            &page,
            "llmscope_gen_ai_metrics_overflow_total{metric=\"llmscope_gen_ai_cost_usd_total\"}"
        ),
        Some(9000.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "llmscope_gen_ai_metrics_overflow_total{metric=\"gen_ai_client_token_usage\"}"
        ),
        Some(2.0 * 9500.0)
    );
    // On the page: the limit's series plus the overflow one.
    let series = |prefix: &str| page.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(series("llmscope_gen_ai_cost_usd_total{"), 1001);
    assert_eq!(
        series("gen_ai_client_operation_duration_seconds_count{"),
        1001
    );
    assert_eq!(series("gen_ai_client_token_usage_count{"), 1002);
    let overflow = "llmscope_gen_ai_cost_usd_total{otel_metric_overflow=\"true\"}";
    assert_eq!(sample(&page, overflow), Some(4500.0), "{page}");
    assert!(page.contains("user_id=\"user-0\""));
}

#[test]
fn otlp_copies_use_the_conventions_names_units_and_attribute_keys() {
    let telemetry = Telemetry::default();
    let m = GenAiMetrics::start(GenAiMetricsConfig::default(), &telemetry);
    assert!(m.otlp().is_empty(), "nothing counted, nothing sent");
    m.record(&traces(
        "app",
        vec![span(
            1,
            1,
            "chat",
            call("gpt-4o", vec![kv(sc::USAGE_INPUT_TOKENS, 7i64)]),
        )],
    ));
    let resources = m.otlp();
    let metrics = &resources[0].scope_metrics[0].metrics;
    let names: Vec<_> = metrics
        .iter()
        .map(|m| (m.name.as_str(), m.unit.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("gen_ai.client.token.usage", "{token}"),
            ("gen_ai.client.operation.duration", "s")
        ]
    );
    let Some(Data::Histogram(h)) = &metrics[0].data else {
        panic!("a histogram: {:?}", metrics[0]);
    };
    assert_eq!(h.aggregation_temporality, 2, "cumulative");
    let point = &h.data_points[0];
    assert_eq!((point.count, point.sum), (1, Some(7.0)));
    assert_eq!(point.explicit_bounds, series::TOKEN_BUCKETS);
    assert_eq!(point.bucket_counts.len(), series::TOKEN_BUCKETS.len() + 1);
    let keys: Vec<_> = point.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "service.name",
            "gen_ai.token.type"
        ]
    );
}

#[test]
fn settings_are_checked_with_paths() {
    let pipelines = [("traces", Signal::Traces), ("metrics/out", Signal::Metrics)];
    let config = GenAiMetricsConfig {
        dimensions: vec![
            "user".into(),
            "user.id".into(),
            "service.name".into(),
            "".into(),
        ],
        series_limit: 0,
        pipelines: Some(vec!["traces".into(), "metrics/out".into(), "nope".into()]),
        export: ExportConfig {
            pipelines: vec!["traces".into(), "metrics/out".into()],
            interval: std::time::Duration::from_millis(10),
        },
        ..Default::default()
    };
    let mut problems = Vec::new();
    config.check("g", &pipelines, &mut problems);
    let found: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "g.series_limit: must be at least 1",
            "g.export.interval: must be at least 1s",
            "g.dimensions[1]: \"user.id\" would be the label \"user_id\", which the series already have",
            "g.dimensions[2]: \"service.name\" would be the label \"service_name\", which the series already have",
            "g.dimensions[3]: an attribute key is required",
            "g.pipelines[1]: \"metrics/out\" is not a traces pipeline",
            "g.pipelines[2]: \"nope\" is not defined under service.pipelines",
            "g.export.pipelines[0]: \"traces\" is not a metrics pipeline",
        ]
    );
    assert_eq!(
        prometheus_label("gen_ai.conversation.id"),
        "gen_ai_conversation_id"
    );
    assert_eq!(prometheus_label("9lives"), "_9lives");
}
