//! Reading and writing OTLP attributes (`Vec<KeyValue>`) and converting `AnyValue` to and from
//! plain JSON.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};

/// The value of `key`, if present and set.
pub fn get<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The string value of `key`; non-empty strings only.
pub fn get_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match get(attrs, key)? {
        Value::StringValue(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The integer value of `key`, accepting ints, whole doubles and numeric strings (instrumentations
/// disagree on the type of token counts).
pub fn get_i64(attrs: &[KeyValue], key: &str) -> Option<i64> {
    value_as_i64(get(attrs, key)?)
}

pub fn value_as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::IntValue(i) => Some(*i),
        Value::DoubleValue(d) if d.fract() == 0.0 && d.is_finite() => Some(*d as i64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The numeric value of `key` as a float.
pub fn get_f64(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match get(attrs, key)? {
        Value::DoubleValue(d) => Some(*d),
        Value::IntValue(i) => Some(*i as f64),
        Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Whether `key` is present with a value.
pub fn has(attrs: &[KeyValue], key: &str) -> bool {
    get(attrs, key).is_some()
}

/// Sets `key` to `value`, replacing an existing entry.
pub fn set(attrs: &mut Vec<KeyValue>, key: &str, value: Value) {
    let value = Some(AnyValue { value: Some(value) });
    match attrs.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = value,
        None => attrs.push(KeyValue {
            key: key.to_owned(),
            value,
            ..Default::default()
        }),
    }
}

/// Sets `key` only when it has no value yet. Returns whether it was set.
pub fn set_if_absent(attrs: &mut Vec<KeyValue>, key: &str, value: Value) -> bool {
    if has(attrs, key) {
        return false;
    }
    set(attrs, key, value);
    true
}

pub fn string(s: impl Into<String>) -> Value {
    Value::StringValue(s.into())
}

pub fn int(i: i64) -> Value {
    Value::IntValue(i)
}

/// `AnyValue` as plain JSON: kvlists become objects, bytes become hex strings.
pub fn to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        Value::StringValue(s) => J::String(s.clone()),
        Value::BoolValue(b) => J::Bool(*b),
        Value::IntValue(i) => J::from(*i),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Value::BytesValue(b) => J::String(hex::encode(b)),
        Value::ArrayValue(a) => J::Array(a.values.iter().map(any_to_json).collect()),
        Value::KvlistValue(kv) => J::Object(attrs_to_json(&kv.values)),
        #[allow(unreachable_patterns)]
        _ => J::Null,
    }
}

/// An optional `AnyValue` as JSON; empty values are `null`.
pub fn any_to_json(value: &AnyValue) -> serde_json::Value {
    value
        .value
        .as_ref()
        .map_or(serde_json::Value::Null, to_json)
}

/// Attributes as a JSON object (later duplicates win).
pub fn attrs_to_json(attrs: &[KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    attrs
        .iter()
        .map(|kv| {
            let v = kv
                .value
                .as_ref()
                .map_or(serde_json::Value::Null, any_to_json);
            (kv.key.clone(), v)
        })
        .collect()
}

/// Plain JSON as an `AnyValue`: objects become kvlists, `null` an empty value.
pub fn from_json(value: &serde_json::Value) -> AnyValue {
    use serde_json::Value as J;
    let value = match value {
        J::Null => None,
        J::Bool(b) => Some(Value::BoolValue(*b)),
        J::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        }),
        J::String(s) => Some(Value::StringValue(s.clone())),
        J::Array(a) => Some(Value::ArrayValue(ArrayValue {
            values: a.iter().map(from_json).collect(),
        })),
        J::Object(o) => Some(Value::KvlistValue(KeyValueList {
            values: o
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(from_json(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// A value that holds JSON, either as a JSON string (span attributes) or as structured
/// `AnyValue` (log event attributes), decoded to JSON. Strings that are not JSON come back as
/// JSON strings.
pub fn json_content(value: &Value) -> serde_json::Value {
    match value {
        Value::StringValue(s) => {
            serde_json::from_str(s).unwrap_or_else(|_| serde_json::Value::String(s.clone()))
        }
        other => to_json(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_existing_and_appends_new() {
        let mut attrs = Vec::new();
        set(&mut attrs, "a", int(1));
        set(&mut attrs, "a", int(2));
        set(&mut attrs, "b", string("x"));
        assert_eq!(attrs.len(), 2);
        assert_eq!(get_i64(&attrs, "a"), Some(2));
        assert_eq!(get_str(&attrs, "b"), Some("x"));
        assert!(!set_if_absent(&mut attrs, "a", int(3)));
        assert_eq!(get_i64(&attrs, "a"), Some(2));
    }

    #[test]
    fn integers_are_read_from_ints_doubles_and_strings() {
        let mut attrs = Vec::new();
        set(&mut attrs, "i", int(42));
        set(&mut attrs, "d", Value::DoubleValue(17.0));
        set(&mut attrs, "s", string(" 10 "));
        set(&mut attrs, "f", Value::DoubleValue(1.5));
        assert_eq!(get_i64(&attrs, "i"), Some(42));
        assert_eq!(get_i64(&attrs, "d"), Some(17));
        assert_eq!(get_i64(&attrs, "s"), Some(10));
        assert_eq!(get_i64(&attrs, "f"), None);
        assert_eq!(get_f64(&attrs, "f"), Some(1.5));
    }

    #[test]
    fn json_round_trips_through_any_value() {
        let json = serde_json::json!({"role": "user", "parts": [{"type": "text", "content": "hi"}], "n": 3, "ok": true});
        let any = from_json(&json);
        assert_eq!(any_to_json(&any), json);
        assert_eq!(json_content(&string(json.to_string())), json);
        assert_eq!(json_content(&string("plain")), serde_json::json!("plain"));
    }
}
