//! Message content from each family's attributes, converted to the canonical JSON shape.

use std::collections::BTreeMap;

use llmscope_core::attr;
use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::common::v1::any_value::Value;
use serde_json::{Map, Value as J, json};

use super::messages::{self, parse_lenient, text_part};

/// Canonical content found on a span: input messages, output messages, system instructions.
#[derive(Debug, Default)]
pub struct Content {
    pub input: Option<Vec<J>>,
    pub output: Option<Vec<J>>,
    pub system: Option<Vec<J>>,
}

/// Reads content from the first family that has it; canonical attributes are not read here.
pub fn from_aliases(attrs: &[KeyValue], vercel_call: bool) -> Content {
    let mut c = Content {
        input: indexed_messages(attrs, "gen_ai.prompt.")
            .or_else(|| indexed_messages(attrs, "llm.input_messages.")),
        output: indexed_messages(attrs, "gen_ai.completion.")
            .or_else(|| indexed_messages(attrs, "llm.output_messages.")),
        system: None,
    };
    if vercel_call {
        vercel(attrs, &mut c);
    }
    langfuse(attrs, &mut c);
    openinference_values(attrs, &mut c);
    c
}

fn vercel(attrs: &[KeyValue], c: &mut Content) {
    if c.input.is_none()
        && let Some(raw) = attr::get_str(attrs, "ai.prompt.messages")
    {
        c.input = messages::messages(&parse_lenient(raw));
    }
    if let Some(raw) = attr::get_str(attrs, "ai.prompt") {
        let prompt = parse_lenient(raw);
        if let Some(system) = prompt.get("system").and_then(J::as_str) {
            c.system.get_or_insert_with(|| vec![text_part(system)]);
        }
        if c.input.is_none() {
            c.input = match prompt.get("prompt") {
                Some(p) => Some(messages::input_messages(p)),
                None => messages::messages(&prompt),
            };
        }
    }
    if c.output.is_none() {
        let mut parts = Vec::new();
        if let Some(text) = attr::get_str(attrs, "ai.response.text") {
            parts.push(text_part(text));
        }
        if let Some(raw) = attr::get_str(attrs, "ai.response.toolCalls")
            && let J::Array(calls) = parse_lenient(raw)
        {
            parts.extend(calls.iter().map(|call| {
                json!({"type": "tool_call", "id": call.get("toolCallId"),
                        "name": call.get("toolName"),
                        "arguments": call.get("args").or_else(|| call.get("input"))})
            }));
        }
        if !parts.is_empty() {
            let mut m = messages::message("assistant", parts);
            if let Some(reason) = attr::get_str(attrs, "ai.response.finishReason") {
                m["finish_reason"] = J::String(reason.to_owned());
            }
            c.output = Some(vec![m]);
        }
    }
}

fn langfuse(attrs: &[KeyValue], c: &mut Content) {
    if c.input.is_none()
        && let Some(raw) = attr::get_str(attrs, "langfuse.observation.input")
    {
        c.input = Some(messages::input_messages(&parse_lenient(raw)));
    }
    if c.output.is_none()
        && let Some(raw) = attr::get_str(attrs, "langfuse.observation.output")
    {
        c.output = Some(messages::output_messages(&parse_lenient(raw)));
    }
}

/// OpenInference's raw `input.value`/`output.value`, used when no structured messages exist:
/// usually the provider's request and response bodies.
fn openinference_values(attrs: &[KeyValue], c: &mut Content) {
    if attr::get_str(attrs, "openinference.span.kind") != Some("LLM") {
        return;
    }
    if c.input.is_none()
        && let Some(raw) = attr::get_str(attrs, "input.value")
    {
        c.input = Some(messages::input_messages(&parse_lenient(raw)));
    }
    if c.output.is_none()
        && let Some(raw) = attr::get_str(attrs, "output.value")
    {
        c.output = Some(messages::output_messages(&parse_lenient(raw)));
    }
}

/// Messages spread over indexed flat keys: `{prefix}{N}.role`, `{prefix}{N}.content`,
/// `{prefix}{N}.tool_calls.{M}.name`, ... (deprecated OTel) or `{prefix}{N}.message.role`,
/// `{prefix}{N}.message.contents.{M}.message_content.text`, ... (OpenInference).
fn indexed_messages(attrs: &[KeyValue], prefix: &str) -> Option<Vec<J>> {
    let mut by_index: BTreeMap<usize, BTreeMap<&str, &Value>> = BTreeMap::new();
    for kv in attrs {
        let Some(rest) = kv.key.strip_prefix(prefix) else {
            continue;
        };
        let Some((index, field)) = rest.split_once('.') else {
            continue;
        };
        let (Ok(index), Some(value)) = (
            index.parse(),
            kv.value.as_ref().and_then(|v| v.value.as_ref()),
        ) else {
            continue;
        };
        let field = field.strip_prefix("message.").unwrap_or(field);
        by_index.entry(index).or_default().insert(field, value);
    }
    let out: Vec<J> = by_index
        .values()
        .filter_map(|fields| messages::canonical_message(&flat_message(fields)))
        .collect();
    (!out.is_empty()).then_some(out)
}

/// An OpenAI-shaped message from flat fields, for [`messages::canonical_message`].
fn flat_message(fields: &BTreeMap<&str, &Value>) -> J {
    let text = |v: &Value| match v {
        Value::StringValue(s) => J::String(s.clone()),
        other => attr::to_json(other),
    };
    let mut m = Map::new();
    m.insert(
        "role".into(),
        fields
            .get("role")
            .map_or(J::String("user".into()), |v| text(v)),
    );
    let mut blocks = Vec::new();
    let mut calls: BTreeMap<&str, Map<String, J>> = BTreeMap::new();
    for (field, value) in fields {
        if let Some(rest) = field.strip_prefix("contents.") {
            if let Some((_, "message_content.text")) = rest.split_once('.') {
                blocks.push(json!({"type": "text", "text": text(value)}));
            }
        } else if let Some(rest) = field.strip_prefix("tool_calls.") {
            let Some((index, sub)) = rest.split_once('.') else {
                continue;
            };
            let sub = sub.strip_prefix("tool_call.").unwrap_or(sub);
            let sub = sub.strip_prefix("function.").unwrap_or(sub);
            calls
                .entry(index)
                .or_default()
                .insert(sub.to_owned(), text(value));
        }
    }
    match fields.get("content") {
        Some(v) => {
            m.insert("content".into(), text(v));
        }
        None if !blocks.is_empty() => {
            m.insert("content".into(), J::Array(blocks));
        }
        None => {}
    }
    if !calls.is_empty() {
        let calls = calls.into_values().map(J::Object).collect();
        m.insert("tool_calls".into(), J::Array(calls));
    }
    for key in ["tool_call_id", "finish_reason"] {
        if let Some(v) = fields.get(key) {
            m.insert(key.into(), text(v));
        }
    }
    J::Object(m)
}
