//! What each instrumentation library sends, recorded from the real library against a fake
//! provider (`collector/core/testdata/genai/record/`), read back through the API: calls
//! counted once, tokens, cost, content and redaction.

use hyper::StatusCode;
use llmscope_core::test_util::fixtures;
use serde_json::Value as J;

use crate::harness::Collector;

const JSON: (&str, &str) = ("content-type", "application/json");

/// gpt-4o-mini, 42 input tokens of which 10 cached, 17 output: 32 * $0.15 + 10 * $0.075 +
/// 17 * $0.60 per million.
const CALL_USD: f64 = 15.75e-6;

/// The collector's stored database as text, to look for what must not be there.
fn stored_text(db: &std::path::Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("database");
    let mut text = String::new();
    for table in ["spans", "logs"] {
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM {table}"))
            .expect("select");
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).expect("rows");
        while let Some(row) = rows.next().expect("row") {
            for i in 0..columns {
                if let Ok(Some(v)) = row.get::<_, Option<String>>(i) {
                    text.push_str(&v);
                    text.push('\n');
                }
            }
        }
    }
    text
}

/// The newest trace, whole, as `/api/v1/traces/{id}` answers it.
async fn newest_trace(c: &Collector) -> J {
    let list = c.get("/api/v1/traces?limit=10").await.json();
    let trace_id = list["traces"][0]["trace_id"]
        .as_str()
        .expect("a trace")
        .to_owned();
    c.get(&format!("/api/v1/traces/{trace_id}")).await.json()
}

/// Sends `fixture`, waits for `calls` calls in the summary by model, checks tokens, cost and
/// that no PII of the recordings reached the database. Returns the collector and the summary.
async fn calls_of(fixture: &str, calls: i64) -> (Collector, J) {
    let usd = CALL_USD * calls as f64;
    calls_with(fixture, None, calls, (42 * calls, 17 * calls), usd).await
}

/// [`calls_of`] for a library that reports other token counts than the provider's (`input`,
/// `output` in all) and so costs `usd`.
async fn calls_with(
    fixture: &str,
    logs: Option<&str>,
    calls: i64,
    (input, output): (i64, i64),
    usd: f64,
) -> (Collector, J) {
    let c = Collector::start().await;
    let reply = c
        .post_otlp("/v1/traces", &[JSON], fixture.as_bytes().to_vec())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    if let Some(logs) = logs {
        let reply = c
            .post_otlp("/v1/logs", &[JSON], logs.as_bytes().to_vec())
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let summary = c
        .eventually("/api/v1/analytics/summary?group_by=model", |s| {
            s["groups"].as_array().is_some_and(|g| !g.is_empty())
        })
        .await;
    let group = &summary["groups"][0];
    assert_eq!(group["requests"], calls, "{summary:#}");
    assert_eq!(group["input_tokens"], input, "{summary:#}");
    assert_eq!(group["output_tokens"], output, "{summary:#}");
    let cost = group["cost_usd"].as_f64().expect("cost");
    assert!((cost - usd).abs() < 1e-12, "{summary:#}");
    let text = stored_text(&c.db);
    for pii in ["jane.doe@example.com", "415 555 0100"] {
        assert!(!text.contains(pii), "{pii} reached the database");
    }
    assert!(text.contains("[REDACTED:EMAIL]") && text.contains("[REDACTED:PHONE]"));
    (c, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logfire_streamed_calls_count_once_with_their_latency() {
    // Three calls: one plain, one streamed inside `agent-run` (its usage arrives on a
    // zero-length log span beside it), one streamed with no parent (its log in another trace).
    let (c, summary) = calls_of(fixtures::LOGFIRE_OPENAI_CHAT, 3).await;
    let p50 = summary["groups"][0]["latency_ms"]["p50"]
        .as_f64()
        .expect("p50");
    assert!(
        p50 > 0.0,
        "a streamed call lasts until its stream ends: {summary:#}"
    );
    let list = c.get("/api/v1/traces?limit=10").await.json();
    let names: Vec<&str> = list["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .filter_map(|t| t["root_name"].as_str())
        .collect();
    assert!(names.contains(&"agent-run"), "{names:?}");
    assert!(
        names.contains(&"Chat Completion with 'gpt-4o-mini'"),
        "named by the filled message, not the template: {names:?}"
    );
    let llm_calls: i64 = list["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .map(|t| t["llm_calls"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(
        llm_calls, 4,
        "the no-parent call's log is a trace of its own: {list:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlflow_native_spans_are_model_calls_with_usage_content_and_identity() {
    let (c, _) = calls_of(fixtures::MLFLOW_OPENAI_CHAT, 2).await;
    let trace = newest_trace(&c).await;
    let call = trace["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "Completions"))
        .expect("a call");
    assert_eq!(call["gen_ai"]["provider"], "openai", "{call:#}");
    assert_eq!(call["gen_ai"]["request_model"], "gpt-4o-mini", "{call:#}");
    assert_eq!(call["gen_ai"]["response_model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        call["gen_ai"]["output_messages"][0]["parts"][0]["content"],
        "Sure: call [REDACTED:PHONE] or write to [REDACTED:EMAIL]."
    );
    // The streamed call's chunks split the phone number across events: redacted where split.
    let streamed = trace["spans"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["events"].as_array().is_some_and(|e| e.len() > 2))
        })
        .expect("the streamed call");
    let text: String = streamed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| {
            let chunk: J =
                serde_json::from_str(e["attributes"]["mlflow.chunk.value"].as_str()?).ok()?;
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        text,
        "Sure: call [REDACTED:PHONE] or write to [REDACTED:EMAIL]."
    );
    let by_user = c
        .get("/api/v1/analytics/summary?group_by=user")
        .await
        .json();
    assert_eq!(by_user["groups"][0]["key"]["user"], "user-1", "{by_user:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openinference_langchain_beside_the_openai_instrumentor_counts_each_call_once() {
    // Each call is described twice: by LangChain's `ChatOpenAI` span and by the OpenAI
    // instrumentor's `ChatCompletion` span beside it.
    calls_of(fixtures::OPENINFERENCE_LANGCHAIN_CHAT, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litellm_calls_are_priced_with_their_cached_tokens_and_keep_litellms_cost() {
    // LiteLLM reports cached tokens only in `metadata.usage_object`; its `raw_gen_ai_request`
    // span (content in `llm.openai.messages`) is no call of its own.
    let (c, _) = calls_of(fixtures::LITELLM_OPENAI_CHAT, 2).await;
    let trace = newest_trace(&c).await;
    let call = trace["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "litellm_request"))
        .expect("a call");
    let provided = call["attributes"]["llmscope.cost.provided_usd"]
        .as_f64()
        .expect("LiteLLM's cost kept");
    assert!((provided - CALL_USD).abs() < 1e-12, "{provided}");
    assert_eq!(call["gen_ai"]["cache_read_tokens"], 10, "{call:#}");
}

#[test]
fn openinference_finish_reasons_are_carried() {
    use llmscope_core::Processor as _;
    let mut batch = fixtures::traces_batch(fixtures::OPENINFERENCE_LANGCHAIN_CHAT);
    llmscope_processors::normalize::Normalize::default()
        .process(&mut batch)
        .expect("normalize");
    let spans = llmscope_core::test_util::spans_of(&batch);
    let chat = spans
        .iter()
        .find(|s| s.name == "ChatOpenAI")
        .expect("a LangChain call");
    assert_eq!(
        llmscope_core::attr::get(&chat.attributes, "gen_ai.response.finish_reasons")
            .map(llmscope_core::attr::to_json),
        Some(serde_json::json!(["stop"]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openlit_calls_count_once_with_the_tokens_openlit_reports() {
    // OpenLIT sends no cached tokens, and counts a streamed call's tokens itself (50 in, 30 out)
    // instead of reading the provider's usage: both library-side.
    // gpt-4o-mini: (42 + 50) * $0.15 + (17 + 30) * $0.60 per million.
    let usd = (92.0 * 0.15 + 47.0 * 0.60) / 1e6;
    calls_with(fixtures::OPENLIT_OPENAI_CHAT, None, 2, (92, 47), usd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langfuse_generations_are_calls_with_usage_and_identity() {
    // Langfuse sends no response id: each generation is a call of its own.
    let (c, _) = calls_of(fixtures::LANGFUSE_OPENAI_CHAT, 2).await;
    let by_session = c
        .get("/api/v1/analytics/summary?group_by=session")
        .await
        .json();
    assert_eq!(
        by_session["groups"][0]["key"]["session"], "sess-1",
        "{by_session:#}"
    );
    assert_eq!(by_session["groups"][0]["requests"], 2, "{by_session:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openinference_anthropic_beside_the_sdks_own_spans_counts_each_call_once() {
    // claude-3-5-haiku: 32 uncached input * $0.80 + 10 cache reads * $0.08 + 17 output * $4.00
    // per million, per call.
    let usd = 2.0 * (32.0 * 0.80 + 10.0 * 0.08 + 17.0 * 4.00) / 1e6;
    calls_with(
        fixtures::OPENINFERENCE_ANTHROPIC_CHAT,
        None,
        2,
        (84, 34),
        usd,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vercel_ai_calls_count_once_not_with_their_wrappers() {
    // `ai.generateText` wraps `ai.generateText.doGenerate` and repeats its usage.
    let (c, _) = calls_of(fixtures::VERCEL_AI_OPENAI_CHAT, 2).await;
    let by_user = c
        .get("/api/v1/analytics/summary?group_by=user")
        .await
        .json();
    assert_eq!(by_user["groups"][0]["key"]["user"], "user-1", "{by_user:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openinference_js_streamed_calls_count_without_usage() {
    // The JavaScript instrumentation records no usage and no response id for a streamed call
    // (library-side): two calls, the first one's tokens and cost.
    calls_with(
        fixtures::OPENINFERENCE_JS_OPENAI_CHAT,
        None,
        2,
        (42, 17),
        CALL_USD,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openllmetry_and_openinference_openai_calls_count_once() {
    calls_of(fixtures::OPENLLMETRY_OPENAI_CHAT, 2).await;
    calls_of(fixtures::OPENINFERENCE_OPENAI_CHAT, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openllmetry_js_calls_count_once_with_the_tokens_it_reports() {
    // No cached tokens; a streamed call's tokens are its own count (28 in, 21 out).
    // gpt-4o-mini: (42 + 28) * $0.15 + (17 + 21) * $0.60 per million.
    let usd = (70.0 * 0.15 + 38.0 * 0.60) / 1e6;
    let (c, _) = calls_with(fixtures::OPENLLMETRY_JS_OPENAI_CHAT, None, 2, (70, 38), usd).await;
    let by_session = c
        .get("/api/v1/analytics/summary?group_by=session")
        .await
        .json();
    assert_eq!(
        by_session["groups"][0]["key"]["session"], "sess-1",
        "{by_session:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openllmetry_langchain_calls_count_once() {
    calls_of(fixtures::OPENLLMETRY_LANGCHAIN_CHAT, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_otel_genai_spans_and_content_events_are_joined_and_redacted() {
    // 2.1b0 reports no cached tokens: gpt-4o-mini at 42 * $0.15 + 17 * $0.60 per million a call.
    let usd = 2.0 * (42.0 * 0.15 + 17.0 * 0.60) / 1e6;
    let logs = Some(fixtures::OTEL_GENAI_OPENAI_CHAT_LOGS);
    let (c, _) = calls_with(fixtures::OTEL_GENAI_OPENAI_CHAT, logs, 2, (84, 34), usd).await;
    let list = c.get("/api/v1/traces?limit=10").await.json();
    let trace_id = list["traces"][0]["trace_id"]
        .as_str()
        .expect("trace")
        .to_owned();
    let trace = c
        .eventually(&format!("/api/v1/traces/{trace_id}"), |t| {
            t["spans"].as_array().is_some_and(|spans| {
                spans
                    .iter()
                    .filter(|s| !s["gen_ai"]["input_messages"].is_null())
                    .count()
                    == 2
            })
        })
        .await;
    let call = trace["spans"]
        .as_array()
        .and_then(|s| s.iter().find(|s| !s["gen_ai"]["output_messages"].is_null()))
        .expect("content joined to its call");
    assert_eq!(
        call["gen_ai"]["output_messages"][0]["parts"][0]["content"],
        "Sure: call [REDACTED:PHONE] or write to [REDACTED:EMAIL].",
        "{call:#}"
    );
    let text = stored_text(&c.db);
    assert!(!text.contains("jane.doe@example.com") && !text.contains("415 555 0100"));
}
