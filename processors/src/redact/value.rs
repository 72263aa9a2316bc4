//! Redacting one value in scope: strings as text; JSON-valued strings and structured
//! `AnyValue`s inside their string leaves, keeping their shape. Fails closed: a value that cannot
//! be processed is reported so the caller replaces it.

use llmscope_core::otlp::common::v1::any_value::Value;
use serde_json::Value as J;

use super::scanner::{Found, Hit, Scanner};

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
    let trimmed = s.trim_start();
    let json_like = trimmed.starts_with('{') || trimmed.starts_with('[');
    let matches = if json_like && s.contains('\\') {
        scanner.matches(&escapes_as_spaces(s))
    } else {
        scanner.matches(s)
    };
    let hits = &matches.hits;
    // Escapes (`\u0040`) can hide a match from the text scan, so such documents are parsed
    // even when the scan found nothing. Otherwise a document whose every match lies inside one
    // string literal, clear of quotes and escapes, is redacted in place: the result is the
    // same, and stays valid JSON, without parsing.
    let hidden = json_like && s.contains("\\u");
    if json_like
        && (hidden || !hits.is_empty())
        && (hidden || !inside_literals(s, hits))
        && let Ok(mut doc) = serde_json::from_str::<J>(s)
    {
        return redact_document(scanner, s, &mut doc, found, !hits.is_empty());
    }
    let outcome = scanner.redact_matches(s, &matches);
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

/// A parsed JSON document redacted leaf by leaf, then written back over `s`.
fn redact_document(
    scanner: &Scanner,
    s: &mut String,
    doc: &mut J,
    found: &mut Found,
    raw_hits: bool,
) -> Result<Verdict, Unprocessable> {
    let mut inner = 0;
    let verdict = redact_json(scanner, doc, &mut inner, 0)?;
    *found |= inner;
    match verdict {
        Verdict::Drop => return Ok(Verdict::Drop),
        Verdict::Unchanged if !raw_hits => return Ok(Verdict::Unchanged),
        _ => {}
    }
    let mut text = serde_json::to_string(doc).map_err(|_| Unprocessable)?;
    // A match across the document's structure (`"password": "..."`) is caught here.
    let rest = scanner.redact(&text);
    *found |= rest.found;
    if rest.drop {
        return Ok(Verdict::Drop);
    }
    if let Some(t) = rest.text {
        text = t;
    }
    *s = text;
    Ok(Verdict::Changed)
}

/// `s` with every two-byte escape (`\\n`, `\\"`, ...) written as two spaces: the same length, so
/// offsets carry over, and a decoded newline or quote, like a space, is neither part of a word
/// nor of any detector's value, so matches start and end where they would in the decoded text.
fn escapes_as_spaces(s: &str) -> String {
    // Built from slices of `s` at ASCII positions, so it is never validated as UTF-8 again.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if after.as_bytes().first().is_some_and(u8::is_ascii) {
            out.push_str("  ");
            rest = &after[1..];
        } else {
            out.push('\\');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Whether every hit replaces bytes inside a single JSON string literal of `s`, with no quote
/// or backslash in them and no backslash just before: then replacing them keeps the document
/// valid and matches what redacting the decoded string would do.
fn inside_literals(s: &str, hits: &[Hit]) -> bool {
    let bytes = s.as_bytes();
    // Literal spans, from a lexer that only tracks quotes and escapes (so it only stops at
    // them).
    let mut literals = Vec::new();
    let mut open: Option<usize> = None;
    let mut escaped = None;
    for i in memchr::memchr2_iter(b'"', b'\\', bytes) {
        if escaped == Some(i) {
            continue;
        }
        match (bytes[i], open) {
            (b'\\', Some(_)) => escaped = Some(i + 1),
            (b'"', Some(start)) => {
                literals.push((start, i));
                open = None;
            }
            (b'"', None) => open = Some(i + 1),
            _ => {}
        }
    }
    let mut spans = literals.iter().peekable();
    hits.iter().all(|h| {
        while spans.peek().is_some_and(|(_, close)| *close < h.end) {
            spans.next();
        }
        let inside = spans
            .peek()
            .is_some_and(|(start, close)| *start <= h.start && h.end <= *close);
        let clean = !bytes[h.start..h.end]
            .iter()
            .any(|b| *b == b'"' || *b == b'\\');
        let after_escape = h.start > 0 && bytes[h.start - 1] == b'\\';
        inside && clean && !after_escape
    })
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

#[cfg(test)]
mod tests {
    use super::escapes_as_spaces;

    #[test]
    fn escapes_become_two_spaces_and_everything_else_stays() {
        for (s, expected) in [
            (r#"{"a":"x\ny"}"#, r#"{"a":"x  y"}"#),
            (r#"\"q\" \\ \u00e9"#, "  q        00e9"),
            ("caf\\é \\", "caf\\é \\"),
            ("東京\\t😀", "東京  😀"),
            ("", ""),
        ] {
            let out = escapes_as_spaces(s);
            assert_eq!(out, expected, "{s:?}");
            assert_eq!(out.len(), s.len(), "offsets carry over: {s:?}");
        }
    }
}
