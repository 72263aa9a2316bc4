//! Message content in the canonical GenAI shape: `[{"role", "parts": [{"type": "text",
//! "content"}, {"type": "tool_call", "id", "name", "arguments"}, {"type": "tool_call_response",
//! "id", "response"}, ...], "finish_reason"?}]`, converted from the shapes instrumentations send
//! (OpenAI chat messages, Anthropic content blocks, Vercel AI SDK messages, plain strings).

use serde_json::{Map, Value as J, json};

pub fn text_part(content: &str) -> J {
    json!({"type": "text", "content": content})
}

pub fn message(role: &str, parts: Vec<J>) -> J {
    json!({"role": role, "parts": parts})
}

/// Parses JSON text; text that is not JSON is returned as a JSON string.
pub fn parse_lenient(text: &str) -> J {
    serde_json::from_str(text).unwrap_or_else(|_| J::String(text.to_owned()))
}

/// A list of messages from an array of messages, an object with `messages` (a request body), or
/// an OpenAI response body (`choices[].message`). `None` when the value has no message shape.
pub fn messages(value: &J) -> Option<Vec<J>> {
    match value {
        J::Array(items) => {
            let converted: Vec<J> = items.iter().filter_map(canonical_message).collect();
            (!converted.is_empty() && converted.len() == items.len()).then_some(converted)
        }
        J::Object(o) => {
            if let Some(inner) = o.get("messages") {
                return messages(inner);
            }
            if let Some(J::Array(choices)) = o.get("choices") {
                let out: Vec<J> = choices.iter().filter_map(choice_message).collect();
                return (!out.is_empty()).then_some(out);
            }
            canonical_message(value).map(|m| vec![m])
        }
        _ => None,
    }
}

/// Output messages from a response body or message list, or one assistant text message.
pub fn output_messages(value: &J) -> Vec<J> {
    match value {
        J::String(s) => vec![message("assistant", vec![text_part(s)])],
        other => messages(other)
            .unwrap_or_else(|| vec![message("assistant", vec![text_part(&other.to_string())])]),
    }
}

/// Input messages from a request body or message list, or one user text message.
pub fn input_messages(value: &J) -> Vec<J> {
    match value {
        J::String(s) => vec![message("user", vec![text_part(s)])],
        other => messages(other)
            .unwrap_or_else(|| vec![message("user", vec![text_part(&other.to_string())])]),
    }
}

fn choice_message(choice: &J) -> Option<J> {
    let mut m = canonical_message(choice.get("message").or_else(|| choice.get("delta"))?)?;
    if let (Some(reason), J::Object(o)) = (choice.get("finish_reason"), &mut m) {
        o.insert("finish_reason".into(), reason.clone());
    }
    Some(m)
}

/// One message in any common shape, in canonical shape; `None` if it has no role.
pub fn canonical_message(m: &J) -> Option<J> {
    let o = m.as_object()?;
    let role = o.get("role").and_then(J::as_str)?;
    if o.get("parts").is_some_and(J::is_array) {
        return Some(m.clone());
    }
    let mut parts = Vec::new();
    if role == "tool"
        && let Some(id) = o.get("tool_call_id").or_else(|| o.get("id"))
    {
        let response = o.get("content").cloned().unwrap_or(J::Null);
        parts.push(json!({"type": "tool_call_response", "id": id, "response": response}));
    }
    if parts.is_empty() {
        match o.get("content") {
            Some(J::String(s)) => parts.push(text_part(s)),
            Some(J::Array(blocks)) => parts.extend(blocks.iter().map(canonical_part)),
            Some(J::Null) | None => {}
            Some(other) => parts.push(text_part(&other.to_string())),
        }
    }
    if let Some(J::Array(calls)) = o.get("tool_calls") {
        parts.extend(calls.iter().map(tool_call_part));
    }
    let mut out = Map::new();
    out.insert("role".into(), J::String(role.to_owned()));
    out.insert("parts".into(), J::Array(parts));
    if let Some(reason) = o.get("finish_reason") {
        out.insert("finish_reason".into(), reason.clone());
    }
    Some(J::Object(out))
}

/// An OpenAI-style tool call (`{id, function: {name, arguments}}`) as a canonical part.
pub fn tool_call_part(call: &J) -> J {
    let function = call.get("function").unwrap_or(call);
    json!({
        "type": "tool_call",
        "id": call.get("id").cloned().unwrap_or(J::Null),
        "name": function.get("name").cloned().unwrap_or(J::Null),
        "arguments": function.get("arguments").cloned().unwrap_or(J::Null),
    })
}

/// One content block (OpenAI, Anthropic or Vercel shape) as a canonical part.
fn canonical_part(block: &J) -> J {
    let Some(o) = block.as_object() else {
        return match block {
            J::String(s) => text_part(s),
            other => text_part(&other.to_string()),
        };
    };
    let field = |k: &str| o.get(k).cloned().unwrap_or(J::Null);
    match o.get("type").and_then(J::as_str) {
        Some("text") | Some("input_text") | Some("output_text") => {
            let text = o.get("text").or_else(|| o.get("content"));
            text_part(text.and_then(J::as_str).unwrap_or_default())
        }
        Some("tool_use") => json!({"type": "tool_call", "id": field("id"), "name": field("name"),
            "arguments": field("input")}),
        Some("tool-call") => json!({"type": "tool_call", "id": field("toolCallId"),
            "name": field("toolName"), "arguments": o.get("args").or_else(|| o.get("input"))}),
        Some("tool_result") => json!({"type": "tool_call_response", "id": field("tool_use_id"),
            "response": field("content")}),
        Some("tool-result") => json!({"type": "tool_call_response", "id": field("toolCallId"),
            "response": o.get("result").or_else(|| o.get("output"))}),
        _ => block.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_request_messages_become_canonical() {
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ]});
        let got = messages(&body).expect("messages");
        assert_eq!(
            got[0],
            json!({"role": "system", "parts": [{"type": "text", "content": "be brief"}]})
        );
        assert_eq!(
            got[1],
            json!({"role": "user", "parts": [{"type": "text", "content": "hi"}]})
        );
        assert_eq!(
            got[2]["parts"][0],
            json!({"type": "tool_call", "id": "c1", "name": "f", "arguments": "{}"})
        );
        assert_eq!(
            got[3]["parts"][0],
            json!({"type": "tool_call_response", "id": "c1", "response": "42"})
        );
    }

    #[test]
    fn openai_response_body_becomes_output_messages_with_finish_reason() {
        let body = json!({"id": "x", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "hello"}}]});
        assert_eq!(
            output_messages(&body),
            vec![
                json!({"role": "assistant", "parts": [{"type": "text", "content": "hello"}],
                "finish_reason": "stop"})
            ]
        );
    }

    #[test]
    fn anthropic_and_vercel_blocks_become_parts() {
        let m = json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "x"}},
            {"type": "tool-call", "toolCallId": "t2", "toolName": "calc", "args": {"a": 1}}]});
        let c = canonical_message(&m).expect("message");
        assert_eq!(c["parts"][0]["type"], "tool_call");
        assert_eq!(c["parts"][0]["name"], "search");
        assert_eq!(c["parts"][1]["id"], "t2");
        assert_eq!(c["parts"][1]["arguments"], json!({"a": 1}));
    }

    #[test]
    fn plain_text_becomes_one_message() {
        assert_eq!(
            input_messages(&parse_lenient("just text")),
            vec![json!({"role": "user", "parts": [{"type": "text", "content": "just text"}]})]
        );
        assert!(messages(&json!([{"no_role": 1}])).is_none());
    }
}
