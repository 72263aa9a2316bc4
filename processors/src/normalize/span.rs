//! Normalizing one span's attributes onto the canonical GenAI schema.

use llmscope_core::attr;
use std::ops::Range;

use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::semconv as sc;
use serde_json::Value as J;

use super::aliases::{
    AliasIndex, PROVIDER_ALIASES, PROVIDER_SLOTS, SCALAR_ALIASES, TOKEN_ALIASES, TOKEN_SLOTS,
    provider_name, with_slots,
};
use super::content;

/// The attribute families a span can carry. More than one may be present.
#[derive(Debug, Default, Clone, Copy)]
struct Families {
    otel: bool,
    openinference: bool,
    traceloop: bool,
    vercel: bool,
    langfuse: bool,
}

impl Families {
    fn detect(attrs: &[KeyValue]) -> Self {
        let mut f = Self::default();
        for kv in attrs {
            let k = kv.key.as_str();
            f.otel |= k.starts_with("gen_ai.");
            f.openinference |= k == "openinference.span.kind"
                || k.starts_with("llm.input_messages.")
                || k.starts_with("llm.token_count.")
                || k == "llm.model_name";
            f.traceloop |= k.starts_with("traceloop.")
                || k.starts_with("llm.usage.")
                || k == "llm.request.type";
            f.vercel |= k == "ai.operationId";
            f.langfuse |= k.starts_with("langfuse.observation.");
        }
        f
    }

    fn any(self) -> bool {
        self.otel || self.openinference || self.traceloop || self.vercel || self.langfuse
    }

    /// The most specific family, recorded as `llmscope.source`.
    fn name(self) -> &'static str {
        if self.langfuse {
            "langfuse"
        } else if self.vercel {
            "vercel_ai"
        } else if self.openinference {
            "openinference"
        } else if self.traceloop {
            "openllmetry"
        } else {
            "otel"
        }
    }
}

/// Brings a span's attributes onto the canonical schema, keeping the originals. Returns whether
/// the span is a GenAI span; other spans are left untouched.
pub fn normalize(attrs: &mut Vec<KeyValue>) -> bool {
    // MLflow's JSON-encoded attributes become canonical ones first; the rest then applies.
    super::mlflow::normalize(attrs);
    let families = Families::detect(attrs);
    if !families.any() {
        return false;
    }
    // The Vercel AI SDK wraps each model call (`ai.generateText.doGenerate`) in a span for the
    // whole function (`ai.generateText`) that repeats its usage; only the inner one is the call.
    let vercel_wrapper = families.vercel && vercel_operation(attrs).is_none();

    if let Some(op) = operation(attrs) {
        attr::set_if_absent(attrs, sc::OPERATION_NAME, attr::string(op));
    }
    let index = AliasIndex::of(attrs);
    for (canonical, slots) in with_slots(SCALAR_ALIASES, 0) {
        if vercel_wrapper && !matches!(canonical, sc::SESSION_ID | sc::USER_ID) {
            continue;
        }
        copy_first(attrs, &index, canonical, slots);
    }
    let providers = PROVIDER_SLOTS..PROVIDER_SLOTS + PROVIDER_ALIASES.len();
    let raw = index.values(attrs, providers).find_map(|v| match v {
        Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    });
    if !attr::has(attrs, sc::PROVIDER_NAME)
        && !vercel_wrapper
        && let Some(raw) = raw
    {
        let name = provider_name(raw);
        attr::set(attrs, sc::PROVIDER_NAME, attr::string(name));
    }
    if !vercel_wrapper {
        for (canonical, slots) in with_slots(TOKEN_ALIASES, TOKEN_SLOTS) {
            let n = index.values(attrs, slots).find_map(attr::value_as_i64);
            if !attr::has(attrs, canonical)
                && let Some(n) = n
            {
                attr::set(attrs, canonical, attr::int(n));
            }
        }
        langfuse_usage(attrs);
        litellm_usage(attrs);
        openinference_bodies(attrs);
        make_inclusive(attrs);
    }
    normalize_content(attrs, families.vercel && !vercel_wrapper);

    let genai = sc::is_genai(attrs);
    if genai {
        attr::set_if_absent(attrs, sc::SOURCE_FAMILY, attr::string(families.name()));
    }
    genai
}

/// The first alias in `slots` with a value, unless it is an empty string.
fn copy_first(attrs: &mut Vec<KeyValue>, index: &AliasIndex, canonical: &str, slots: Range<usize>) {
    if attr::has(attrs, canonical) {
        return;
    }
    let found = index
        .values(attrs, slots)
        .next()
        .filter(|v| !matches!(v, Value::StringValue(s) if s.is_empty()))
        .cloned();
    if let Some(value) = found {
        attr::set(attrs, canonical, value);
    }
}

/// `gen_ai.operation.name` from the family-specific span kinds.
fn operation(attrs: &[KeyValue]) -> Option<&'static str> {
    if let Some(kind) = attr::get_str(attrs, "openinference.span.kind") {
        return match kind.to_ascii_uppercase().as_str() {
            "LLM" => Some("chat"),
            "EMBEDDING" => Some("embeddings"),
            "TOOL" => Some("execute_tool"),
            "AGENT" => Some("invoke_agent"),
            _ => None,
        };
    }
    if let Some(kind) = attr::get_str(attrs, "llm.request.type") {
        return match kind {
            "chat" => Some("chat"),
            "completion" => Some("text_completion"),
            "embedding" => Some("embeddings"),
            _ => None,
        };
    }
    if let Some(kind) = attr::get_str(attrs, "traceloop.span.kind") {
        return match kind {
            "tool" => Some("execute_tool"),
            "agent" => Some("invoke_agent"),
            _ => None,
        };
    }
    if attr::has(attrs, "ai.operationId") {
        return vercel_operation(attrs);
    }
    match attr::get_str(attrs, "langfuse.observation.type")? {
        "generation" => Some("chat"),
        "embedding" => Some("embeddings"),
        "tool" => Some("execute_tool"),
        "agent" => Some("invoke_agent"),
        _ => None,
    }
}

/// The operation of a Vercel AI SDK span, `None` for the wrappers around model calls.
fn vercel_operation(attrs: &[KeyValue]) -> Option<&'static str> {
    let id = attr::get_str(attrs, "ai.operationId")?;
    if id == "ai.toolCall" {
        Some("execute_tool")
    } else if id.ends_with(".doEmbed") {
        Some("embeddings")
    } else if id.ends_with(".doGenerate") || id.ends_with(".doStream") {
        Some("chat")
    } else {
        None
    }
}

/// Langfuse's `usage_details` is a JSON object of exclusive counts (`input`, `output`,
/// `input_cached_tokens`, `output_reasoning_tokens`, ...); canonical counts are inclusive sums.
fn langfuse_usage(attrs: &mut Vec<KeyValue>) {
    let Some(raw) = attr::get_str(attrs, "langfuse.observation.usage_details") else {
        return;
    };
    let Ok(J::Object(details)) = serde_json::from_str::<J>(raw) else {
        return;
    };
    let (mut input, mut output, mut cache_read, mut cache_write, mut reasoning) = (
        None::<i64>,
        None::<i64>,
        None::<i64>,
        None::<i64>,
        None::<i64>,
    );
    let add = |slot: &mut Option<i64>, n: i64| *slot = Some(slot.unwrap_or(0) + n);
    for (key, value) in &details {
        // The provider's own usage, passed through (Langfuse's OpenAI wrapper): counts are
        // inclusive, the breakdowns nested (`prompt_tokens_details.cached_tokens`).
        if let J::Object(nested) = value {
            let n = |k: &str| nested.get(k).and_then(J::as_i64);
            match key.as_str() {
                "prompt_tokens_details" | "input_tokens_details" => {
                    if let Some(n) = n("cached_tokens") {
                        add(&mut cache_read, n);
                    }
                }
                "completion_tokens_details" | "output_tokens_details" => {
                    if let Some(n) = n("reasoning_tokens") {
                        add(&mut reasoning, n);
                    }
                }
                _ => {}
            }
            continue;
        }
        let Some(n) = value.as_i64() else { continue };
        let key = key.to_ascii_lowercase();
        if key.contains("cache_read") || key.contains("cached") {
            add(&mut cache_read, n);
        } else if key.contains("cache_creation") || key.contains("cache_write") {
            add(&mut cache_write, n);
        }
        if key.contains("reasoning") {
            add(&mut reasoning, n);
        }
        if key.starts_with("input") || key.starts_with("prompt") || key.contains("cache") {
            add(&mut input, n);
        } else if key.starts_with("output") || key.starts_with("completion") {
            add(&mut output, n);
        }
    }
    for (key, value) in [
        (sc::USAGE_INPUT_TOKENS, input),
        (sc::USAGE_OUTPUT_TOKENS, output),
        (sc::USAGE_CACHE_READ_INPUT_TOKENS, cache_read),
        (sc::USAGE_CACHE_CREATION_INPUT_TOKENS, cache_write),
        (sc::USAGE_REASONING_OUTPUT_TOKENS, reasoning),
    ] {
        if let Some(n) = value {
            attr::set_if_absent(attrs, key, attr::int(n));
        }
    }
}

/// LiteLLM reports cached and reasoning tokens only inside `metadata.usage_object`, the
/// provider's usage as a Python literal (`{'prompt_tokens': 42, 'prompt_tokens_details':
/// {'cached_tokens': 10}, ...}`).
fn litellm_usage(attrs: &mut Vec<KeyValue>) {
    let Some(raw) = attr::get_str(attrs, "metadata.usage_object") else {
        return;
    };
    let Some(usage) = python_literal(raw) else {
        return;
    };
    for (pointer, canonical) in [
        (
            "/prompt_tokens_details/cached_tokens",
            sc::USAGE_CACHE_READ_INPUT_TOKENS,
        ),
        (
            "/completion_tokens_details/reasoning_tokens",
            sc::USAGE_REASONING_OUTPUT_TOKENS,
        ),
    ] {
        if let Some(n) = usage
            .pointer(pointer)
            .and_then(J::as_i64)
            .filter(|n| *n > 0)
        {
            attr::set_if_absent(attrs, canonical, attr::int(n));
        }
    }
}

/// A Python dict or list literal of numbers, `None`, booleans and quote-free strings, as JSON;
/// `None` for anything else (a string holding a double quote would be misread, so none is).
fn python_literal(text: &str) -> Option<J> {
    if text.contains('"') || !text.trim_start().starts_with(['{', '[']) {
        return None;
    }
    let json = text
        .replace('\'', "\"")
        .replace("None", "null")
        .replace("True", "true")
        .replace("False", "false");
    serde_json::from_str(&json).ok()
}

/// OpenInference keeps the provider's request and response bodies in `llm.invocation_parameters`
/// and `output.value`; they name the requested model and the response id.
fn openinference_bodies(attrs: &mut Vec<KeyValue>) {
    if !attr::has(attrs, sc::REQUEST_MODEL) {
        let model = attr::get_str(attrs, "llm.invocation_parameters")
            .and_then(|raw| serde_json::from_str::<J>(raw).ok())
            .and_then(|params| params.get("model")?.as_str().map(str::to_owned));
        if let Some(model) = model {
            attr::set(attrs, sc::REQUEST_MODEL, attr::string(model));
        }
    }
    if attr::get_str(attrs, "openinference.span.kind") == Some("LLM")
        && !attr::has(attrs, sc::RESPONSE_ID)
    {
        // The provider's body (`id`), or LangChain's result: `llm_output.id`, or the message's
        // `response_metadata.id`.
        let id = attr::get_str(attrs, "output.value")
            .and_then(|raw| serde_json::from_str::<J>(raw).ok())
            .and_then(|body| {
                [
                    "/id",
                    "/llm_output/id",
                    "/generations/0/0/message/kwargs/response_metadata/id",
                ]
                .iter()
                .find_map(|p| body.pointer(p)?.as_str().map(str::to_owned))
            });
        if let Some(id) = id {
            attr::set(attrs, sc::RESPONSE_ID, attr::string(id));
        }
    }
    if !attr::has(attrs, sc::RESPONSE_FINISH_REASONS)
        && let Some(reason) = attr::get_str(attrs, "llm.finish_reason").map(str::to_owned)
    {
        use llmscope_core::otlp::common::v1::{AnyValue, ArrayValue, any_value::Value};
        let reasons = ArrayValue {
            values: vec![AnyValue {
                value: Some(Value::StringValue(reason)),
            }],
        };
        attr::set(
            attrs,
            sc::RESPONSE_FINISH_REASONS,
            Value::ArrayValue(reasons),
        );
    }
    // A span that only names one model: OpenInference's `llm.model_name` is the response model
    // when known, which is also the best request model we have.
    if !attr::has(attrs, sc::REQUEST_MODEL)
        && let Some(model) = attr::get_str(attrs, sc::RESPONSE_MODEL).map(str::to_owned)
    {
        attr::set(attrs, sc::REQUEST_MODEL, attr::string(model));
    }
}

/// Canonical counts are inclusive. A cache count larger than the input count (or a reasoning
/// count larger than the output count) can only mean the source reported them exclusively.
fn make_inclusive(attrs: &mut Vec<KeyValue>) {
    let get = |attrs: &[KeyValue], k| attr::get_i64(attrs, k).unwrap_or(0);
    let cache = get(attrs, sc::USAGE_CACHE_READ_INPUT_TOKENS)
        + get(attrs, sc::USAGE_CACHE_CREATION_INPUT_TOKENS);
    let reasoning = get(attrs, sc::USAGE_REASONING_OUTPUT_TOKENS);
    if let Some(input) = attr::get_i64(attrs, sc::USAGE_INPUT_TOKENS)
        && cache > input
    {
        attr::set(attrs, sc::USAGE_INPUT_TOKENS, attr::int(input + cache));
    }
    if let Some(output) = attr::get_i64(attrs, sc::USAGE_OUTPUT_TOKENS)
        && reasoning > output
    {
        attr::set(
            attrs,
            sc::USAGE_OUTPUT_TOKENS,
            attr::int(output + reasoning),
        );
    }
}

/// Canonical content attributes are JSON strings on spans (the conventions' form for spans).
fn normalize_content(attrs: &mut Vec<KeyValue>, vercel_call: bool) {
    let missing = [
        sc::INPUT_MESSAGES,
        sc::OUTPUT_MESSAGES,
        sc::SYSTEM_INSTRUCTIONS,
    ]
    .iter()
    .any(|k| !attr::has(attrs, k));
    if !missing {
        return;
    }
    let found = content::from_aliases(attrs, vercel_call);
    for (key, value) in [
        (sc::INPUT_MESSAGES, found.input),
        (sc::OUTPUT_MESSAGES, found.output),
        (sc::SYSTEM_INSTRUCTIONS, found.system),
    ] {
        if let Some(messages) = value {
            attr::set_if_absent(attrs, key, attr::string(J::Array(messages).to_string()));
        }
    }
}

/// Logfire names a span by its message template (`Chat Completion with {request_data[model]!r}`)
/// and puts the filled message in `logfire.msg`: the span is named by the message.
pub fn name_from_message(span: &mut llmscope_core::otlp::trace::v1::Span) {
    if attr::get_str(&span.attributes, "logfire.msg_template") == Some(span.name.as_str())
        && let Some(message) = attr::get_str(&span.attributes, "logfire.msg")
    {
        span.name = message.to_owned();
    }
}
