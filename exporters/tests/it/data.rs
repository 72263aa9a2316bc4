//! Test data shared by the store tests: recorded fixtures and generated spans, normalized and
//! priced as the default pipeline would.

use llmscope_core::otlp::logs::v1::LogRecord;
use llmscope_core::otlp::trace::v1::{Span, Status};
use llmscope_core::semconv as sc;
use llmscope_core::telemetry::Telemetry;
use llmscope_core::test_util::{TestValue, fixtures, kv, logs, span, traces};
use llmscope_core::{Batch, Processor, attr};
use llmscope_processors::anomaly::{Anomaly, AnomalyConfig};
use llmscope_processors::cost::{Cost, CostConfig};
use llmscope_processors::normalize::Normalize;

/// 2026-11-27T00:00:00Z in Unix nanoseconds.
pub const DAY_START: u64 = 1_795_737_600_000_000_000;
pub const HOUR: u64 = 3_600_000_000_000;

fn processed(mut batch: Batch, anomaly: &mut Anomaly) -> Batch {
    let telemetry = Telemetry::default();
    Normalize::default().process(&mut batch).expect("normalize");
    Cost::new(&CostConfig::default(), &telemetry)
        .expect("cost")
        .process(&mut batch)
        .expect("cost");
    anomaly.process(&mut batch).expect("anomaly");
    batch
}

fn call(i: u64, model: &str, service_user: &str) -> Span {
    // Names with more than eight words, punctuation and case, for the trace list's word search.
    let name = match i % 5 {
        0 => "chat",
        1 => "Chat: summarize-Ticket #42",
        2 => "one two three four five six seven eight nine-ticket",
        _ => "chat_v2 résumé",
    };
    let mut s = span(
        (i % 40) as u8 + 100,
        (i % 250) as u8 + 1,
        name,
        vec![
            kv(
                "gen_ai.system",
                if model.starts_with("claude") {
                    "anthropic"
                } else {
                    "openai"
                },
            ),
            kv("llm.request.type", "chat"),
            kv(sc::REQUEST_MODEL, model),
            kv("gen_ai.usage.prompt_tokens", 100 + (i % 13) as i64 * 10),
            kv("gen_ai.usage.completion_tokens", 20 + (i % 7) as i64 * 5),
            kv(sc::USER_ID, service_user),
        ],
    );
    s.trace_id = (1000 + i / 3)
        .to_be_bytes()
        .iter()
        .chain([7u8; 8].iter())
        .copied()
        .collect();
    s.span_id = (i + 1).to_be_bytes().to_vec();
    if i.is_multiple_of(2) {
        s.attributes
            .push(kv("session.id", format!("session-{}", i % 5).as_str()));
    }
    s.start_time_unix_nano = DAY_START + (i % 6) * HOUR + i * 1_000_000_000;
    s.end_time_unix_nano = s.start_time_unix_nano + 300_000_000 + (i % 11) * 97_000_000;
    if i.is_multiple_of(17) {
        s.status = Some(Status {
            code: 2,
            message: "rate limited".into(),
        });
    }
    s
}

/// Every batch of the data set, in export order.
pub fn batches() -> Vec<Batch> {
    let mut anomaly = Anomaly::new(
        AnomalyConfig {
            warmup: 20,
            ..Default::default()
        },
        &Telemetry::default(),
    );
    let mut out = vec![
        processed(
            fixtures::traces_batch(fixtures::OPENLLMETRY_OPENAI_CHAT),
            &mut anomaly,
        ),
        processed(
            fixtures::traces_batch(fixtures::OPENINFERENCE_OPENAI_CHAT),
            &mut anomaly,
        ),
    ];
    // Generated calls over six hours, three models, two services.
    for (service, range) in [("agent", 0..90u64), ("batch-job", 90..150u64)] {
        let spans: Vec<Span> = range
            .map(|i| {
                call(
                    i,
                    ["gpt-4o-mini", "claude-3-5-haiku", "gpt-4o"][(i % 3) as usize],
                    &format!("user-{}", i % 4),
                )
            })
            .collect();
        out.push(processed(traces(service, spans), &mut anomaly));
    }
    // Two spans of one call (an SDK's and an instrumentation's), one latency spike.
    let mut sdk = call(500, "gpt-4o-mini", "user-9");
    attr::set(
        &mut sdk.attributes,
        sc::RESPONSE_ID,
        attr::string("resp-shared"),
    );
    let mut inner = call(501, "gpt-4o-mini", "user-9");
    inner.trace_id = sdk.trace_id.clone();
    inner.parent_span_id = sdk.span_id.clone();
    attr::set(
        &mut inner.attributes,
        sc::RESPONSE_ID,
        attr::string("resp-shared"),
    );
    let mut spike = call(502, "gpt-4o-mini", "user-9");
    spike.end_time_unix_nano = spike.start_time_unix_nano + 40_000_000_000;
    out.push(processed(
        traces("agent", vec![sdk, inner, spike]),
        &mut anomaly,
    ));
    // Content as log events, for a span of the generated traces.
    let target = call(3, "gpt-4o-mini", "user-3");
    let event = |name: &str, body: serde_json::Value| LogRecord {
        event_name: name.into(),
        trace_id: target.trace_id.clone(),
        span_id: target.span_id.clone(),
        time_unix_nano: target.start_time_unix_nano,
        body: Some(attr::from_json(&body)),
        ..Default::default()
    };
    out.push(processed(
        logs(
            "agent",
            vec![
                event("gen_ai.user.message", serde_json::json!({"content": "hi"})),
                event(
                    "gen_ai.choice",
                    serde_json::json!({"message": {"content": "hello"}}),
                ),
            ],
        ),
        &mut anomaly,
    ));
    out.push(processed(logs("agent", custom_events()), &mut anomaly));
    out
}

/// Custom events and scores (`events.rs` says what they sum to): on the trace of calls 0-2
/// (gpt-4o-mini, claude-3-5-haiku, gpt-4o) a trace-level `helpfulness` of 0.8 and one of 0.2
/// naming call 1; on the trace of calls 3-5 a `thumbs` of true and a `label` category; a
/// `helpfulness` on a trace with no calls; two named events and one without a trace.
pub fn custom_events() -> Vec<LogRecord> {
    use llmscope_core::score::{SCORE_COMMENT, SCORE_EVENT, SCORE_NAME, SCORE_VALUE};
    let first = call(0, "gpt-4o-mini", "user-0");
    let second = call(3, "gpt-4o-mini", "user-3");
    let at = |minute: u64| DAY_START + 7 * HOUR + minute * 60_000_000_000;
    let record = |name: &str, trace: &[u8], span: &[u8], minute, attributes| LogRecord {
        event_name: name.into(),
        trace_id: trace.to_vec(),
        span_id: span.to_vec(),
        time_unix_nano: at(minute),
        attributes,
        ..Default::default()
    };
    let score = |trace: &[u8], span: &[u8], minute, name: &str, value: TestValue| {
        record(
            SCORE_EVENT,
            trace,
            span,
            minute,
            vec![kv(SCORE_NAME, name), kv(SCORE_VALUE, value)],
        )
    };
    let second_span = call(1, "claude-3-5-haiku", "user-1").span_id;
    let mut commented = score(&first.trace_id, &[], 1, "helpfulness", TestValue::from(0.8));
    commented.attributes.push(kv(SCORE_COMMENT, "clear answer"));
    vec![
        commented,
        score(
            &first.trace_id,
            &second_span,
            2,
            "helpfulness",
            TestValue::from(0.2),
        ),
        score(&second.trace_id, &[], 3, "thumbs", TestValue::from(true)),
        score(&second.trace_id, &[], 4, "label", TestValue::from("good")),
        score(&[9; 16], &[], 5, "helpfulness", TestValue::from(1.0)),
        record(
            "user.feedback_opened",
            &second.trace_id,
            &second.span_id,
            6,
            vec![kv("ui.surface", "chat")],
        ),
        record(
            "tool.retry",
            &first.trace_id,
            &[],
            7,
            vec![kv("attempt", 2i64)],
        ),
        LogRecord {
            body: Some(attr::from_json(&serde_json::json!("deploy finished"))),
            ..record("deploy", &[], &[], 8, vec![])
        },
    ]
}
