//! GenAI semantic-convention keys: the canonical schema every GenAI span is normalized to (the
//! current OpenTelemetry GenAI conventions plus `llmscope.*`), and accessors over it.
//!
//! Canonical token counts are inclusive: input includes cache reads and writes, output includes
//! reasoning.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::attr;

pub const OPERATION_NAME: &str = "gen_ai.operation.name";
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
pub const RESPONSE_ID: &str = "gen_ai.response.id";
pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// The conventions' name for cache writes (`cache_creation`); `cache_write` is read as an alias.
pub const USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
pub const USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
pub const TOOL_NAME: &str = "gen_ai.tool.name";
pub const AGENT_NAME: &str = "gen_ai.agent.name";

/// General OpenTelemetry keys LLMScope reads.
pub const SESSION_ID: &str = "session.id";
pub const USER_ID: &str = "user.id";
pub const SERVICE_NAME: &str = "service.name";
pub const EVENT_NAME: &str = "event.name";

/// What LLMScope adds.
pub const COST_INPUT_USD: &str = "llmscope.cost.input_usd";
pub const COST_OUTPUT_USD: &str = "llmscope.cost.output_usd";
pub const COST_TOTAL_USD: &str = "llmscope.cost.total_usd";
pub const PII_TYPES: &str = "llmscope.pii.types";
pub const ANOMALY_KIND: &str = "llmscope.anomaly.kind";
pub const ANOMALY_SCORE: &str = "llmscope.anomaly.score";
pub const ANOMALY_VALUE: &str = "llmscope.anomaly.value";
pub const ANOMALY_BASELINE: &str = "llmscope.anomaly.baseline";
/// `event.name` of anomaly events.
pub const ANOMALY_EVENT: &str = "llmscope.anomaly";
/// Which attribute family the normalizer recognised on a span (`otel`, `openinference`, ...).
pub const SOURCE_FAMILY: &str = "llmscope.source";
/// On the span that starts a model call described by two spans: the span id (hex) of the one
/// that finished it, whose response it took.
pub const CALL_JOINED_SPAN: &str = "llmscope.call.joined_span_id";
/// A joined span's end before it was moved to the end of the call.
pub const ORIGINAL_END_TIME: &str = "llmscope.span.original_end_time_unix_nano";

/// Log event names that carry GenAI message content.
pub mod events {
    pub const OPERATION_DETAILS: &str = "gen_ai.client.inference.operation.details";
    pub const SYSTEM_MESSAGE: &str = "gen_ai.system.message";
    pub const USER_MESSAGE: &str = "gen_ai.user.message";
    pub const ASSISTANT_MESSAGE: &str = "gen_ai.assistant.message";
    pub const TOOL_MESSAGE: &str = "gen_ai.tool.message";
    pub const CHOICE: &str = "gen_ai.choice";
}

/// The event name of a log record: the `event_name` field, or the older `event.name` attribute.
pub fn event_name(record: &LogRecord) -> Option<&str> {
    if !record.event_name.is_empty() {
        return Some(&record.event_name);
    }
    attr::get_str(&record.attributes, EVENT_NAME)
}

/// Operation names (`gen_ai.operation.name`) that are one call to a model.
pub const MODEL_CALL_OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "completion",
];

/// Whether a (normalized) span describes one call to a model: its tokens and cost count.
pub fn is_model_call(attrs: &[KeyValue]) -> bool {
    match attr::get_str(attrs, OPERATION_NAME) {
        Some(op) => MODEL_CALL_OPERATIONS.contains(&op),
        None => attr::has(attrs, REQUEST_MODEL) || attr::has(attrs, RESPONSE_MODEL),
    }
}

/// Whether a (normalized) span carries any GenAI semantics at all.
pub fn is_genai(attrs: &[KeyValue]) -> bool {
    attr::has(attrs, OPERATION_NAME)
        || attr::has(attrs, PROVIDER_NAME)
        || attr::has(attrs, REQUEST_MODEL)
        || attr::has(attrs, RESPONSE_MODEL)
}

/// The canonical GenAI fields of a normalized span, read in one pass for storage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenAiFields {
    pub operation: Option<String>,
    pub provider: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub response_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub conversation_id: Option<String>,
    /// Canonical message content as JSON text (as sent, for text values).
    pub input_messages: Option<String>,
    pub output_messages: Option<String>,
    pub system_instructions: Option<String>,
    pub is_model_call: bool,
}

impl GenAiFields {
    pub fn read(attrs: &[KeyValue]) -> Self {
        let s = |k| attr::get_str(attrs, k).map(str::to_owned);
        let n = |k| attr::get_i64(attrs, k);
        // Content is kept as sent when it is text (JSON on spans, as the conventions say), and
        // written as JSON when structured (log events): no parse on the hot path.
        let content = |k| {
            attr::get(attrs, k).map(|v| match v {
                opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s) => {
                    s.clone()
                }
                other => attr::to_json(other).to_string(),
            })
        };
        Self {
            operation: s(OPERATION_NAME),
            provider: s(PROVIDER_NAME),
            request_model: s(REQUEST_MODEL),
            response_model: s(RESPONSE_MODEL),
            response_id: s(RESPONSE_ID),
            input_tokens: n(USAGE_INPUT_TOKENS),
            output_tokens: n(USAGE_OUTPUT_TOKENS),
            cache_read_tokens: n(USAGE_CACHE_READ_INPUT_TOKENS),
            cache_write_tokens: n(USAGE_CACHE_CREATION_INPUT_TOKENS),
            reasoning_tokens: n(USAGE_REASONING_OUTPUT_TOKENS),
            cost_usd: attr::get_f64(attrs, COST_TOTAL_USD),
            session_id: s(SESSION_ID),
            user_id: s(USER_ID),
            conversation_id: s(CONVERSATION_ID),
            input_messages: content(INPUT_MESSAGES),
            output_messages: content(OUTPUT_MESSAGES),
            system_instructions: content(SYSTEM_INSTRUCTIONS),
            is_model_call: is_model_call(attrs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_calls_are_told_apart_from_tool_and_agent_spans() {
        let mut attrs = Vec::new();
        attr::set(&mut attrs, OPERATION_NAME, attr::string("execute_tool"));
        attr::set(&mut attrs, REQUEST_MODEL, attr::string("gpt-4o"));
        assert!(!is_model_call(&attrs));
        assert!(is_genai(&attrs));
        attr::set(&mut attrs, OPERATION_NAME, attr::string("chat"));
        assert!(is_model_call(&attrs));
        assert!(!is_model_call(&[]));
    }
}
