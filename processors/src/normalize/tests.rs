//! Table-driven tests: one case per instrumentation family, plus the recorded fixtures.

use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::logs::v1::LogRecord;
use llmscope_core::semconv as sc;
use llmscope_core::test_util::{fixtures, kv, logs, records_of, span, spans_of, traces};
use llmscope_core::{Processor, attr};
use serde_json::{Value as J, json};

use super::*;

/// Expected canonical values: strings, integers, or JSON content.
enum Want {
    S(&'static str),
    I(i64),
    Content(J),
    Absent,
}
use Want::*;

fn check(case: &str, attrs: &[KeyValue], wants: &[(&str, Want)]) {
    for (key, want) in wants {
        match want {
            S(s) => assert_eq!(attr::get_str(attrs, key), Some(*s), "{case}: {key}"),
            I(n) => assert_eq!(attr::get_i64(attrs, key), Some(*n), "{case}: {key}"),
            Content(j) => {
                let got = attr::get(attrs, key).map(attr::json_content);
                assert_eq!(got.as_ref(), Some(j), "{case}: {key}");
            }
            Absent => assert!(!attr::has(attrs, key), "{case}: {key} should be absent"),
        }
    }
}

fn normalized(attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    let mut batch = traces("svc", vec![span(1, 1, "call", attrs)]);
    Normalize::default().process(&mut batch).expect("process");
    spans_of(&batch)[0].attributes.clone()
}

fn user_text(text: &str) -> J {
    json!([{"role": "user", "parts": [{"type": "text", "content": text}]}])
}

fn assistant_text(text: &str, finish: Option<&str>) -> J {
    let mut m = json!({"role": "assistant", "parts": [{"type": "text", "content": text}]});
    if let Some(f) = finish {
        m["finish_reason"] = json!(f);
    }
    J::Array(vec![m])
}

#[test]
fn every_family_ends_with_canonical_attributes() {
    type Case = (&'static str, Vec<KeyValue>, Vec<(&'static str, Want)>);
    let cases: Vec<Case> = vec![
        (
            "otel current names are kept as sent",
            vec![
                kv(sc::OPERATION_NAME, "chat"),
                kv(sc::PROVIDER_NAME, "openai"),
                kv(sc::REQUEST_MODEL, "gpt-4o"),
                kv(sc::USAGE_INPUT_TOKENS, 100i64),
                kv(sc::USAGE_OUTPUT_TOKENS, 20i64),
                kv(sc::USAGE_CACHE_READ_INPUT_TOKENS, 30i64),
                kv("gen_ai.usage.prompt_tokens", 999i64),
            ],
            vec![
                (sc::OPERATION_NAME, S("chat")),
                (sc::USAGE_INPUT_TOKENS, I(100)),
                (sc::USAGE_CACHE_READ_INPUT_TOKENS, I(30)),
                (sc::SOURCE_FAMILY, S("otel")),
            ],
        ),
        (
            "otel deprecated names",
            vec![
                kv("gen_ai.system", "openai"),
                kv(sc::REQUEST_MODEL, "gpt-4o"),
                kv("gen_ai.usage.prompt_tokens", 100i64),
                kv("gen_ai.usage.completion_tokens", 20i64),
                kv("gen_ai.prompt.0.role", "user"),
                kv("gen_ai.prompt.0.content", "hello"),
                kv("gen_ai.completion.0.role", "assistant"),
                kv("gen_ai.completion.0.content", "hi there"),
                kv("gen_ai.completion.0.finish_reason", "stop"),
            ],
            vec![
                (sc::PROVIDER_NAME, S("openai")),
                (sc::USAGE_INPUT_TOKENS, I(100)),
                (sc::USAGE_OUTPUT_TOKENS, I(20)),
                (sc::INPUT_MESSAGES, Content(user_text("hello"))),
                (
                    sc::OUTPUT_MESSAGES,
                    Content(assistant_text("hi there", Some("stop"))),
                ),
            ],
        ),
        (
            "openinference",
            vec![
                kv("openinference.span.kind", "LLM"),
                kv("llm.provider", "azure"),
                kv("llm.system", "openai"),
                kv("llm.model_name", "gpt-4o-2024-08-06"),
                kv(
                    "llm.invocation_parameters",
                    r#"{"model": "gpt-4o", "temperature": 0}"#,
                ),
                kv("llm.token_count.prompt", 50i64),
                kv("llm.token_count.completion", 60i64),
                kv("llm.token_count.completion_details.reasoning", 40i64),
                kv("llm.token_count.prompt_details.cache_write", 5i64),
                kv("llm.input_messages.0.message.role", "user"),
                kv(
                    "llm.input_messages.0.message.contents.0.message_content.type",
                    "text",
                ),
                kv(
                    "llm.input_messages.0.message.contents.0.message_content.text",
                    "what is 2+2",
                ),
                kv("llm.output_messages.0.message.role", "assistant"),
                kv(
                    "llm.output_messages.0.message.tool_calls.0.tool_call.id",
                    "call_1",
                ),
                kv(
                    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name",
                    "calc",
                ),
                kv(
                    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
                    r#"{"expr":"2+2"}"#,
                ),
            ],
            vec![
                (sc::OPERATION_NAME, S("chat")),
                (sc::PROVIDER_NAME, S("azure.ai.openai")),
                (sc::REQUEST_MODEL, S("gpt-4o")),
                (sc::RESPONSE_MODEL, S("gpt-4o-2024-08-06")),
                (sc::USAGE_INPUT_TOKENS, I(50)),
                (sc::USAGE_OUTPUT_TOKENS, I(60)),
                (sc::USAGE_REASONING_OUTPUT_TOKENS, I(40)),
                (sc::USAGE_CACHE_CREATION_INPUT_TOKENS, I(5)),
                (sc::INPUT_MESSAGES, Content(user_text("what is 2+2"))),
                (
                    sc::OUTPUT_MESSAGES,
                    Content(json!([{"role": "assistant", "parts": [{"type": "tool_call",
                        "id": "call_1", "name": "calc", "arguments": "{\"expr\":\"2+2\"}"}]}])),
                ),
                (sc::SOURCE_FAMILY, S("openinference")),
            ],
        ),
        (
            "openllmetry/traceloop with exclusive anthropic cache counts",
            vec![
                kv("llm.request.type", "chat"),
                kv("gen_ai.system", "Anthropic"),
                kv(sc::REQUEST_MODEL, "claude-3-5-haiku-20241022"),
                kv("gen_ai.usage.prompt_tokens", 10i64),
                kv("gen_ai.usage.completion_tokens", 5i64),
                kv("gen_ai.usage.cache_read_input_tokens", 200i64),
                kv("llm.usage.total_tokens", 215i64),
                kv("traceloop.association.properties.user_id", "u-1"),
            ],
            vec![
                (sc::OPERATION_NAME, S("chat")),
                (sc::PROVIDER_NAME, S("anthropic")),
                (sc::USAGE_INPUT_TOKENS, I(210)),
                (sc::USAGE_CACHE_READ_INPUT_TOKENS, I(200)),
                (sc::USAGE_OUTPUT_TOKENS, I(5)),
                (sc::USER_ID, S("u-1")),
                (sc::SOURCE_FAMILY, S("openllmetry")),
            ],
        ),
        (
            "vercel ai sdk model call",
            vec![
                kv("ai.operationId", "ai.generateText.doGenerate"),
                kv("ai.model.id", "gpt-4o-mini"),
                kv("ai.model.provider", "openai.chat"),
                kv("ai.usage.promptTokens", 12i64),
                kv("ai.usage.completionTokens", 7i64),
                kv("ai.response.id", "resp-1"),
                kv("ai.response.model", "gpt-4o-mini-2024-07-18"),
                kv(
                    "ai.prompt.messages",
                    r#"[{"role":"system","content":"be nice"},{"role":"user","content":[{"type":"text","text":"hey"}]}]"#,
                ),
                kv("ai.response.text", "hello!"),
                kv("ai.response.finishReason", "stop"),
                kv("ai.telemetry.metadata.sessionId", "s-9"),
            ],
            vec![
                (sc::OPERATION_NAME, S("chat")),
                (sc::PROVIDER_NAME, S("openai")),
                (sc::REQUEST_MODEL, S("gpt-4o-mini")),
                (sc::RESPONSE_MODEL, S("gpt-4o-mini-2024-07-18")),
                (sc::RESPONSE_ID, S("resp-1")),
                (sc::USAGE_INPUT_TOKENS, I(12)),
                (sc::USAGE_OUTPUT_TOKENS, I(7)),
                (sc::SESSION_ID, S("s-9")),
                (
                    sc::INPUT_MESSAGES,
                    Content(json!([
                        {"role": "system", "parts": [{"type": "text", "content": "be nice"}]},
                        {"role": "user", "parts": [{"type": "text", "content": "hey"}]}])),
                ),
                (
                    sc::OUTPUT_MESSAGES,
                    Content(assistant_text("hello!", Some("stop"))),
                ),
                (sc::SOURCE_FAMILY, S("vercel_ai")),
            ],
        ),
        (
            "vercel ai sdk wrapper span does not count the call twice",
            vec![
                kv("ai.operationId", "ai.generateText"),
                kv("ai.model.id", "gpt-4o-mini"),
                kv("ai.model.provider", "openai.chat"),
                kv("ai.usage.promptTokens", 12i64),
                kv("ai.telemetry.metadata.userId", "u-2"),
            ],
            vec![
                (sc::USAGE_INPUT_TOKENS, Absent),
                (sc::REQUEST_MODEL, Absent),
                (sc::OPERATION_NAME, Absent),
                (sc::USER_ID, S("u-2")),
            ],
        ),
        (
            "langfuse generation with exclusive usage details",
            vec![
                kv("langfuse.observation.type", "generation"),
                kv("langfuse.observation.model.name", "claude-sonnet-4"),
                kv(
                    "langfuse.observation.usage_details",
                    r#"{"input": 30, "output": 12, "input_cache_read": 10, "output_reasoning_tokens": 4}"#,
                ),
                kv(
                    "langfuse.observation.input",
                    r#"[{"role":"user","content":"summarize"}]"#,
                ),
                kv("langfuse.observation.output", "a summary"),
                kv("langfuse.session.id", "sess-1"),
            ],
            vec![
                (sc::OPERATION_NAME, S("chat")),
                (sc::REQUEST_MODEL, S("claude-sonnet-4")),
                (sc::USAGE_INPUT_TOKENS, I(40)),
                (sc::USAGE_CACHE_READ_INPUT_TOKENS, I(10)),
                (sc::USAGE_OUTPUT_TOKENS, I(16)),
                (sc::USAGE_REASONING_OUTPUT_TOKENS, I(4)),
                (sc::SESSION_ID, S("sess-1")),
                (sc::INPUT_MESSAGES, Content(user_text("summarize"))),
                (
                    sc::OUTPUT_MESSAGES,
                    Content(assistant_text("a summary", None)),
                ),
                (sc::SOURCE_FAMILY, S("langfuse")),
            ],
        ),
    ];
    for (name, attrs, wants) in cases {
        let out = normalized(attrs);
        check(name, &out, &wants);
    }
}

#[test]
fn non_genai_spans_pass_through_unchanged() {
    let attrs = vec![
        kv("http.request.method", "GET"),
        kv("url.full", "https://example.com/llm"),
        kv("db.system", "postgresql"),
    ];
    let before = traces("svc", vec![span(1, 1, "GET /", attrs)]);
    let mut after = before.clone();
    Normalize::default().process(&mut after).expect("process");
    assert_eq!(before, after);
}

#[test]
fn recorded_fixtures_normalize_to_the_same_canonical_calls() {
    for fixture in [
        fixtures::OPENLLMETRY_OPENAI_CHAT,
        fixtures::OPENINFERENCE_OPENAI_CHAT,
    ] {
        let mut batch = fixtures::traces_batch(fixture);
        let before = batch.clone();
        Normalize::default().process(&mut batch).expect("process");
        let spans = spans_of(&batch);
        let calls: Vec<_> = spans
            .iter()
            .filter(|s| sc::is_model_call(&s.attributes))
            .collect();
        assert_eq!(calls.len(), 2, "two chat calls per fixture");
        for (i, call) in calls.iter().enumerate() {
            let a = &call.attributes;
            check(
                "fixture",
                a,
                &[
                    (sc::OPERATION_NAME, S("chat")),
                    (sc::PROVIDER_NAME, S("openai")),
                    (sc::REQUEST_MODEL, S("gpt-4o-mini")),
                    (sc::RESPONSE_MODEL, S("gpt-4o-mini-2024-07-18")),
                    (sc::USAGE_INPUT_TOKENS, I(42)),
                    (sc::USAGE_OUTPUT_TOKENS, I(17)),
                    (sc::USAGE_CACHE_READ_INPUT_TOKENS, I(10)),
                    (sc::SESSION_ID, S("sess-42")),
                    (sc::USER_ID, S("user-7")),
                    (
                        sc::INPUT_MESSAGES,
                        Content(user_text(&format!(
                            "Email me at john.smith@example.org, call {i}"
                        ))),
                    ),
                ],
            );
            // OpenLLMetry records the finish reason on the message; OpenInference does not.
            let output = attr::get(a, sc::OUTPUT_MESSAGES).map(attr::json_content);
            assert_eq!(
                output.as_ref().map(|o| &o[0]["parts"]),
                Some(
                    &assistant_text(
                        "Sure. Contact me at jane.doe@example.com or +1 415 555 0100.",
                        None
                    )[0]["parts"]
                )
            );
            assert!(
                attr::get_str(a, sc::RESPONSE_ID).is_some_and(|id| id.starts_with("chatcmpl-"))
            );
        }
        let root_before = spans_of(&before)
            .into_iter()
            .find(|s| s.name == "agent-run");
        let root_after = spans.iter().find(|s| s.name == "agent-run").copied();
        assert_eq!(root_before, root_after, "the non-GenAI root is unchanged");
    }
}

fn event(name: &str, span_id: u8, body: J) -> LogRecord {
    LogRecord {
        event_name: name.to_owned(),
        trace_id: vec![1; 16],
        span_id: vec![span_id; 8],
        body: Some(attr::from_json(&body)),
        ..Default::default()
    }
}

#[test]
fn old_style_message_events_get_canonical_content() {
    let mut batch = logs(
        "svc",
        vec![
            event("gen_ai.system.message", 1, json!({"content": "be terse"})),
            event("gen_ai.user.message", 1, json!({"content": "hi"})),
            event(
                "gen_ai.choice",
                1,
                json!({"index": 0, "finish_reason": "stop", "message": {"content": "hello"}}),
            ),
            event(
                "gen_ai.tool.message",
                1,
                json!({"id": "call_1", "content": "42"}),
            ),
            event("browser.page_view", 1, json!({"url": "x"})),
        ],
    );
    Normalize::default().process(&mut batch).expect("process");
    let records = records_of(&batch);
    let content =
        |i: usize, key: &str| attr::get(&records[i].attributes, key).map(attr::json_content);
    assert_eq!(
        content(0, sc::SYSTEM_INSTRUCTIONS),
        Some(json!([{"type": "text", "content": "be terse"}]))
    );
    assert_eq!(content(1, sc::INPUT_MESSAGES), Some(user_text("hi")));
    assert_eq!(
        content(2, sc::OUTPUT_MESSAGES),
        Some(assistant_text("hello", Some("stop")))
    );
    assert_eq!(
        content(3, sc::INPUT_MESSAGES),
        Some(
            json!([{"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "42"}]}])
        )
    );
    assert!(
        records[4].attributes.is_empty(),
        "other events are untouched"
    );
}

#[test]
fn operation_details_events_keep_their_structured_content() {
    let messages = json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]);
    let mut record = event("gen_ai.client.inference.operation.details", 2, J::Null);
    attr::set(
        &mut record.attributes,
        sc::INPUT_MESSAGES,
        attr::from_json(&messages).value.expect("value"),
    );
    let mut batch = logs("svc", vec![record]);
    let before = batch.clone();
    Normalize::default().process(&mut batch).expect("process");
    assert_eq!(before, batch);
}
