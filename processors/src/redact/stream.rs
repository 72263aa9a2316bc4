//! Values streamed in pieces: a span's events that carry one response chunk each (MLflow's
//! `mlflow.chunk.item.N` with `mlflow.chunk.value`, other libraries' stream events) split text
//! such as a phone number across events, where no single value holds a whole match.
//!
//! The pieces of one stream are the string values of one attribute key across a span's events,
//! and inside JSON-valued strings the string leaves at one JSON path (`choices.0.delta.content`),
//! in event order. A stream whose pieces are not all the same (identical pieces, such as a
//! repeated response id, are no stream) is scanned as the concatenation of its pieces; a match
//! that crosses pieces is masked in the first piece it touches and cut from the others (a
//! `drop` detector's match is masked all the same: dropping every event would lose the stream).
//! Matches inside one piece are left to the ordinary per-value pass that follows.

use std::collections::BTreeMap;

use llmscope_core::otlp::common::v1::any_value::Value;
use llmscope_core::otlp::trace::v1::span::Event;
use serde_json::Value as J;

use super::scanner::{Found, Scanner};

/// Where a piece lives: event index, attribute index, and the JSON path inside the value (empty
/// for a plain string).
type Place = (usize, usize, Vec<Step>);

/// The pieces of each stream, by attribute key and JSON path, in event order.
type Streams = BTreeMap<(String, Vec<Step>), Vec<(Place, String)>>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

/// Redacts matches that cross the pieces of a stream; returns the types found.
pub fn redact(scanner: &Scanner, events: &mut [Event]) -> Found {
    if events.len() < 2 {
        return 0;
    }
    // Each string value, parsed when it is JSON.
    let mut docs: BTreeMap<(usize, usize), J> = BTreeMap::new();
    // Pieces by (attribute key, path), in event order.
    let mut streams: Streams = BTreeMap::new();
    for (e, event) in events.iter().enumerate() {
        for (a, kv) in event.attributes.iter().enumerate() {
            let Some(Value::StringValue(s)) = kv.value.as_ref().and_then(|v| v.value.as_ref())
            else {
                continue;
            };
            let trimmed = s.trim_start();
            let doc = (trimmed.starts_with('{') || trimmed.starts_with('['))
                .then(|| serde_json::from_str::<J>(s).ok())
                .flatten();
            match doc {
                Some(doc) => {
                    let mut leaves = Vec::new();
                    leaves_of(&doc, &mut Vec::new(), &mut leaves);
                    for (path, text) in leaves {
                        streams
                            .entry((kv.key.clone(), path.clone()))
                            .or_default()
                            .push(((e, a, path), text));
                    }
                    docs.insert((e, a), doc);
                }
                None => streams
                    .entry((kv.key.clone(), Vec::new()))
                    .or_default()
                    .push(((e, a, Vec::new()), s.clone())),
            }
        }
    }
    let mut found = 0;
    let mut rewritten: Vec<(Place, String)> = Vec::new();
    for pieces in streams.values() {
        if pieces.len() < 2 || pieces.iter().all(|(_, t)| *t == pieces[0].1) {
            continue;
        }
        let whole: String = pieces.iter().map(|(_, t)| t.as_str()).collect();
        let mut bounds = Vec::with_capacity(pieces.len());
        let mut at = 0;
        for (_, t) in pieces {
            bounds.push((at, at + t.len()));
            at += t.len();
        }
        let hits: Vec<_> = scanner
            .find(&whole)
            .into_iter()
            .filter(|h| {
                bounds
                    .iter()
                    .filter(|(s, e)| h.start < *e && h.end > *s)
                    .count()
                    > 1
            })
            .collect();
        if hits.is_empty() {
            continue;
        }
        let mut texts: Vec<String> = pieces.iter().map(|(_, t)| t.clone()).collect();
        // Right to left, so earlier offsets stay valid within each piece.
        for hit in hits.iter().rev() {
            let outcome = scanner.apply(&whole, std::slice::from_ref(hit));
            found |= outcome.found;
            let replacement = match &outcome.text {
                Some(text) => text[hit.start..text.len() - (whole.len() - hit.end)].to_owned(),
                None => "[REDACTED]".to_owned(),
            };
            let mut first = true;
            for (i, (s, e)) in bounds.iter().enumerate() {
                if hit.start >= *e || hit.end <= *s {
                    continue;
                }
                let (from, to) = (hit.start.max(*s) - s, hit.end.min(*e) - s);
                let with = if first { replacement.as_str() } else { "" };
                texts[i].replace_range(from..to, with);
                first = false;
            }
        }
        for ((place, original), text) in pieces.iter().zip(texts) {
            if *original != text {
                rewritten.push((place.clone(), text));
            }
        }
    }
    let mut touched = std::collections::BTreeSet::new();
    for ((e, a, path), text) in rewritten {
        match docs.get_mut(&(e, a)) {
            Some(doc) => {
                set_leaf(doc, &path, text);
                touched.insert((e, a));
            }
            None => {
                if let Some(v) = events[e].attributes[a].value.as_mut() {
                    v.value = Some(Value::StringValue(text));
                }
            }
        }
    }
    for ((e, a), doc) in docs {
        if touched.contains(&(e, a))
            && let Some(v) = events[e].attributes[a].value.as_mut()
        {
            v.value = Some(Value::StringValue(doc.to_string()));
        }
    }
    found
}

fn leaves_of(value: &J, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, String)>) {
    match value {
        J::String(s) => out.push((path.clone(), s.clone())),
        J::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                leaves_of(item, path, out);
                path.pop();
            }
        }
        J::Object(map) => {
            for (k, v) in map {
                path.push(Step::Key(k.clone()));
                leaves_of(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn set_leaf(doc: &mut J, path: &[Step], text: String) {
    let mut at = doc;
    for step in path {
        let next = match (step, at) {
            (Step::Key(k), J::Object(map)) => map.get_mut(k),
            (Step::Index(i), J::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return,
        }
    }
    *at = J::String(text);
}
