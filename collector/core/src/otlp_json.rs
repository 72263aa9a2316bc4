//! OTLP/JSON decoding. Proto3's JSON mapping may omit empty repeated fields, and exporters built
//! on it send an empty array attribute as `{"arrayValue": {}}`, which the generated types refuse
//! for want of `values`: such a request is read again with the omitted lists restored (only on
//! failure, so a well-formed request is decoded once).

/// An OTLP/JSON request (or any type deserialized from one).
pub fn from_slice<R: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<R, serde_json::Error> {
    let error = match serde_json::from_slice::<R>(bytes) {
        Ok(request) => return Ok(request),
        Err(error) => error,
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Err(error);
    };
    if !restore_empty_lists(&mut value, 0) {
        return Err(error);
    }
    serde_json::from_value(value).map_err(|_| error)
}

/// Puts `"values": []` into every `arrayValue` and `kvlistValue` without one; whether any was
/// missing. Nesting past 128 levels is left as it is (and refused by the decoder).
fn restore_empty_lists(value: &mut serde_json::Value, depth: usize) -> bool {
    use serde_json::Value as J;
    if depth > 128 {
        return false;
    }
    let mut restored = false;
    match value {
        J::Object(map) => {
            for key in ["arrayValue", "kvlistValue"] {
                if let Some(J::Object(list)) = map.get_mut(key)
                    && !list.contains_key("values")
                {
                    list.insert("values".into(), J::Array(Vec::new()));
                    restored = true;
                }
            }
            for v in map.values_mut() {
                restored |= restore_empty_lists(v, depth + 1);
            }
        }
        J::Array(items) => {
            for v in items {
                restored |= restore_empty_lists(v, depth + 1);
            }
        }
        _ => {}
    }
    restored
}

#[cfg(test)]
mod tests {
    use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;

    #[test]
    fn omitted_empty_lists_are_restored_and_other_errors_kept() {
        let empty = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"a","value":{"arrayValue":{}}}]}}]}"#;
        let request: ExportTraceServiceRequest = super::from_slice(empty).expect("restored");
        assert_eq!(request.resource_spans.len(), 1);
        let bad = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":7,"value":{"arrayValue":{}}}]}}]}"#;
        let error = super::from_slice::<ExportTraceServiceRequest>(bad).expect_err("still bad");
        assert!(error.to_string().contains("invalid type"), "{error}");
    }
}
