//! GenAI log events: message content that arrives beside its span rather than on it.
//!
//! The current conventions send `gen_ai.client.inference.operation.details` with canonical
//! content attributes already. The older per-message events (`gen_ai.{system,user,assistant,
//! tool}.message`, `gen_ai.choice`) carry one message in their body; each is rewritten to the
//! canonical attribute it contributes to, as a structured value, so the store can join content
//! to its span by trace and span id whichever arrives first.

use llmscope_core::attr;
use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::logs::v1::LogRecord;
use llmscope_core::semconv::{self as sc, events};
use serde_json::{Value as J, json};

use super::messages::{self, text_part};

/// Rewrites one GenAI log event's content onto canonical attributes. Returns whether the record
/// is a GenAI content event.
pub fn normalize(record: &mut LogRecord) -> bool {
    let Some(name) = sc::event_name(record).map(str::to_owned) else {
        return false;
    };
    let body = record
        .body
        .as_ref()
        .and_then(|b| b.value.as_ref())
        .map(attr::to_json)
        .unwrap_or(J::Null);
    let (key, value) = match name.as_str() {
        events::OPERATION_DETAILS => return true,
        events::SYSTEM_MESSAGE => {
            let text = content_text(&body);
            (sc::SYSTEM_INSTRUCTIONS, json!([text_part(&text)]))
        }
        events::USER_MESSAGE => (
            sc::INPUT_MESSAGES,
            json!([message_from_body("user", &body)]),
        ),
        events::ASSISTANT_MESSAGE => (
            sc::INPUT_MESSAGES,
            json!([message_from_body("assistant", &body)]),
        ),
        events::TOOL_MESSAGE => (
            sc::INPUT_MESSAGES,
            json!([message_from_body("tool", &body)]),
        ),
        events::CHOICE => {
            let inner = body.get("message").cloned().unwrap_or(J::Null);
            let mut m = message_from_body("assistant", &inner);
            if let Some(reason) = body.get("finish_reason") {
                m["finish_reason"] = reason.clone();
            }
            (sc::OUTPUT_MESSAGES, json!([m]))
        }
        _ => return false,
    };
    if !attr::has(&record.attributes, key)
        && let Some(v) = attr::from_json(&value).value
    {
        attr::set(&mut record.attributes, key, v);
    }
    if !attr::has(&record.attributes, sc::EVENT_NAME) {
        attr::set(
            &mut record.attributes,
            sc::EVENT_NAME,
            Value::StringValue(name),
        );
    }
    true
}

fn content_text(body: &J) -> String {
    match body.get("content") {
        Some(J::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => match body {
            J::String(s) => s.clone(),
            _ => String::new(),
        },
    }
}

/// A message from an old-style event body (`{content, role?, tool_calls?, id?}`).
fn message_from_body(role: &str, body: &J) -> J {
    let mut shaped = match body {
        J::Object(o) => J::Object(o.clone()),
        J::String(s) => json!({ "content": s }),
        _ => json!({}),
    };
    if shaped.get("role").is_none() {
        shaped["role"] = J::String(role.to_owned());
    }
    if role == "tool"
        && shaped.get("tool_call_id").is_none()
        && let Some(id) = shaped.get("id").cloned()
    {
        shaped["tool_call_id"] = id;
    }
    messages::canonical_message(&shaped).unwrap_or_else(|| messages::message(role, vec![]))
}
