//! Redacting one value in scope: strings as text; JSON-valued strings and structured
//! `AnyValue`s inside their string leaves, keeping their shape. Fails closed: a value that cannot
//! be processed is reported so the caller replaces it.

use llmscope_core::otlp::common::v1::any_value::Value;
use serde_json::Value as J;

use super::scanner::{Found, Scanner};

/// Deeper structures are not walked; they are replaced.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    Changed,
    /// A `drop` detector matched: remove the whole value.
    Drop,
}

impl Verdict {
    fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Drop, _) | (_, Verdict::Drop) => Verdict::Drop,
            (Verdict::Changed, _) | (_, Verdict::Changed) => Verdict::Changed,
            _ => Verdict::Unchanged,
        }
    }
}

/// The value could not be processed (bytes, too deep, unserializable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unprocessable;

pub fn redact_value(
    scanner: &Scanner,
    value: &mut Value,
    found: &mut Found,
    depth: usize,
) -> Result<Verdict, Unprocessable> {
    if depth > MAX_DEPTH {
        return Err(Unprocessable);
    }
    match value {
        Value::StringValue(s) => redact_string(scanner, s, found),
        Value::ArrayValue(a) => {
            let mut verdict = Verdict::Unchanged;
            for item in a.values.iter_mut().filter_map(|v| v.value.as_mut()) {
                verdict = verdict.and(redact_value(scanner, item, found, depth + 1)?);
            }
            Ok(verdict)
        }
        Value::KvlistValue(kv) => {
            let mut verdict = Verdict::Unchanged;
            for item in kv
                .values
                .iter_mut()
                .filter_map(|kv| kv.value.as_mut()?.value.as_mut())
            {
                verdict = verdict.and(redact_value(scanner, item, found, depth + 1)?);
            }
            Ok(verdict)
        }
        Value::BytesValue(_) => Err(Unprocessable),
        _ => Ok(Verdict::Unchanged),
    }
}

/// A string: JSON documents are redacted leaf by leaf and stay valid JSON; anything else is
/// redacted as text.
pub fn redact_string(
    scanner: &Scanner,
    s: &mut String,
    found: &mut Found,
) -> Result<Verdict, Unprocessable> {
    let outcome = scanner.redact(s);
    let trimmed = s.trim_start();
    let json_like = trimmed.starts_with('{') || trimmed.starts_with('[');
    // Escapes (`\u0040`) can hide a match from the text scan; only then is a clean-looking JSON
    // document parsed anyway.
    if json_like
        && (outcome.found != 0 || s.contains("\\u"))
        && let Ok(mut doc) = serde_json::from_str::<J>(s)
    {
        let mut inner = 0;
        let verdict = redact_json(scanner, &mut doc, &mut inner, 0)?;
        *found |= inner;
        match verdict {
            Verdict::Drop => return Ok(Verdict::Drop),
            Verdict::Unchanged if outcome.found == 0 => return Ok(Verdict::Unchanged),
            _ => {}
        }
        let mut text = serde_json::to_string(&doc).map_err(|_| Unprocessable)?;
        // A match across the document's structure (keys, separators) is caught here.
        let rest = scanner.redact(&text);
        *found |= rest.found;
        if rest.drop {
            return Ok(Verdict::Drop);
        }
        if let Some(t) = rest.text {
            text = t;
        }
        *s = text;
        return Ok(Verdict::Changed);
    }
    *found |= outcome.found;
    if outcome.drop {
        return Ok(Verdict::Drop);
    }
    match outcome.text {
        Some(text) => {
            *s = text;
            Ok(Verdict::Changed)
        }
        None => Ok(Verdict::Unchanged),
    }
}

fn redact_json(
    scanner: &Scanner,
    doc: &mut J,
    found: &mut Found,
    depth: usize,
) -> Result<Verdict, Unprocessable> {
    if depth > MAX_DEPTH {
        return Err(Unprocessable);
    }
    match doc {
        J::String(s) => {
            let outcome = scanner.redact(s);
            *found |= outcome.found;
            if outcome.drop {
                return Ok(Verdict::Drop);
            }
            Ok(match outcome.text {
                Some(text) => {
                    *s = text;
                    Verdict::Changed
                }
                None => Verdict::Unchanged,
            })
        }
        J::Array(items) => {
            let mut verdict = Verdict::Unchanged;
            for item in items {
                verdict = verdict.and(redact_json(scanner, item, found, depth + 1)?);
            }
            Ok(verdict)
        }
        J::Object(map) => {
            let mut verdict = Verdict::Unchanged;
            for item in map.values_mut() {
                verdict = verdict.and(redact_json(scanner, item, found, depth + 1)?);
            }
            Ok(verdict)
        }
        _ => Ok(Verdict::Unchanged),
    }
}
