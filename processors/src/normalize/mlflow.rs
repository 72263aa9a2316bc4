//! MLflow's native spans (`mlflow.openai.autolog()` and the other autologgers, exported over
//! OTLP): every value is JSON-encoded (`mlflow.spanType = "\"CHAT_MODEL\""`), the call's
//! request and response bodies are in `mlflow.spanInputs` / `mlflow.spanOutputs`, usage in
//! `mlflow.chat.tokenUsage`, the provider's message format in `mlflow.message.format`, and the
//! trace's tags (`session.id`, `user.id`) as `mlflow.traceTag.*` on the root span. They become
//! the canonical attributes, beside the originals.

use llmscope_core::attr;
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::common::v1::{AnyValue, ArrayValue, KeyValue};
use llmscope_core::semconv as sc;
use serde_json::Value as J;

use super::aliases::provider_name;
use super::messages;

/// A JSON-encoded attribute, decoded; text that is not JSON as a JSON string.
fn decoded(attrs: &[KeyValue], key: &str) -> Option<J> {
    attr::get_str(attrs, key).map(messages::parse_lenient)
}

fn text(attrs: &[KeyValue], key: &str) -> Option<String> {
    match decoded(attrs, key)? {
        J::String(s) => Some(s),
        J::Null => None,
        other => Some(other.to_string()),
    }
}

fn set_text(attrs: &mut Vec<KeyValue>, key: &str, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        attr::set_if_absent(attrs, key, attr::string(value));
    }
}

/// Maps an MLflow span's attributes; returns whether it describes a GenAI operation.
pub fn normalize(attrs: &mut Vec<KeyValue>) -> bool {
    for (tag, canonical) in [
        ("mlflow.traceTag.session.id", sc::SESSION_ID),
        ("mlflow.trace.session", sc::SESSION_ID),
        ("mlflow.traceTag.user.id", sc::USER_ID),
        ("mlflow.trace.user", sc::USER_ID),
    ] {
        let value = text(attrs, tag);
        set_text(attrs, canonical, value.as_deref());
    }
    let Some(kind) = text(attrs, "mlflow.spanType") else {
        return false;
    };
    let operation = match kind.as_str() {
        "CHAT_MODEL" => "chat",
        "LLM" => "text_completion",
        "EMBEDDING" => "embeddings",
        "TOOL" => "execute_tool",
        "AGENT" => "invoke_agent",
        _ => return false,
    };
    attr::set_if_absent(attrs, sc::OPERATION_NAME, attr::string(operation));
    attr::set_if_absent(attrs, sc::SOURCE_FAMILY, attr::string("mlflow"));
    let inputs = decoded(attrs, "mlflow.spanInputs");
    let outputs = decoded(attrs, "mlflow.spanOutputs");
    let field = |v: &Option<J>, k: &str| v.as_ref()?.get(k)?.as_str().map(str::to_owned);

    let request_model = field(&inputs, "model").or_else(|| text(attrs, "model"));
    set_text(attrs, sc::REQUEST_MODEL, request_model.as_deref());
    let response_model = text(attrs, "mlflow.llm.model").or_else(|| field(&outputs, "model"));
    set_text(attrs, sc::RESPONSE_MODEL, response_model.as_deref());
    if let Some(format) = text(attrs, "mlflow.message.format") {
        attr::set_if_absent(
            attrs,
            sc::PROVIDER_NAME,
            attr::string(provider_name(&format)),
        );
    }
    set_text(attrs, sc::RESPONSE_ID, field(&outputs, "id").as_deref());

    if let Some(J::Object(usage)) = decoded(attrs, "mlflow.chat.tokenUsage") {
        for (key, canonical) in [
            ("input_tokens", sc::USAGE_INPUT_TOKENS),
            ("output_tokens", sc::USAGE_OUTPUT_TOKENS),
            ("cache_read_input_tokens", sc::USAGE_CACHE_READ_INPUT_TOKENS),
            (
                "cache_creation_input_tokens",
                sc::USAGE_CACHE_CREATION_INPUT_TOKENS,
            ),
        ] {
            if let Some(n) = usage.get(key).and_then(J::as_i64) {
                attr::set_if_absent(attrs, canonical, attr::int(n));
            }
        }
    }
    if matches!(operation, "chat" | "text_completion") {
        if let Some(inputs) = &inputs {
            let messages = J::Array(messages::input_messages(inputs)).to_string();
            attr::set_if_absent(attrs, sc::INPUT_MESSAGES, attr::string(messages));
        }
        if let Some(outputs) = outputs.as_ref().filter(|o| !o.is_null()) {
            let messages = J::Array(messages::output_messages(outputs)).to_string();
            attr::set_if_absent(attrs, sc::OUTPUT_MESSAGES, attr::string(messages));
            let reasons: Vec<AnyValue> = outputs
                .get("choices")
                .and_then(J::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("finish_reason")?.as_str())
                .map(|r| AnyValue {
                    value: Some(Value::StringValue(r.to_owned())),
                })
                .collect();
            if !reasons.is_empty() {
                let reasons = Value::ArrayValue(ArrayValue { values: reasons });
                attr::set_if_absent(attrs, sc::RESPONSE_FINISH_REASONS, reasons);
            }
        }
    }
    true
}
