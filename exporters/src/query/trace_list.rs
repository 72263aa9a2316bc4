//! The trace list's rows, kept at write time: each store recomputes the summary of every trace
//! a batch touched from that trace's spans (a handful of rows found by primary key) with
//! [`summarize_trace`], and stores it with the trace's filter keys. Listing is then a keyset
//! scan of an index on `(project, start)` (or on `(project, key, start)` with a filter), never
//! an aggregation over spans.
//!
//! Guarantees: a summary is a pure function of the trace's stored spans, so retries, late spans
//! and spans arriving out of order give the same row as one batch would; every store computes it
//! with this one function, so they answer alike. A trace is listed under the time range holding
//! its start (its earliest span) and under every service, model (request or response) and
//! provider any of its spans has.

use std::collections::{BTreeSet, HashMap};

use super::{Filter, TraceQuery, TraceSummary};

/// What a trace's summary and rollups are computed from: one stored span's columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanBrief {
    pub span_id: String,
    pub is_root: bool,
    pub name: String,
    pub service: Option<String>,
    pub start_ns: i64,
    pub end_ns: i64,
    pub error: bool,
    pub is_model_call: bool,
    pub response_id: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub provider: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub operation: Option<String>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub cache_read_tokens: Option<i64>,
}

/// The columns [`SpanBrief`] reads, in its field order, for stores that select them by name.
pub const BRIEF_COLUMNS: &str = "span_id, parent_span_id IS NULL, name, service, start_time_ns,
    end_time_ns, status_code = 2, is_model_call, response_id, input_tokens, output_tokens, cost_usd,
    provider, request_model, response_model, operation, user_id, session_id, cache_read_tokens";

/// A filter key: `s:` service, `m:` model, `p:` provider, `u:` user, `x:` session, `w:` a word
/// of the root span's name (the name the list shows), then the value; `e:` alone for a trace
/// with an error.
pub fn key(kind: char, value: &str) -> String {
    format!("{kind}:{value}")
}

/// The key of a trace with an error.
pub const ERROR_KEY: &str = "e:";

/// Words of its root's name a trace is found by: at most this many.
pub const WORDS_PER_NAME: usize = 8;

/// The words of `name` a search matches: its runs of ASCII letters and digits, lowercased, the
/// first [`WORDS_PER_NAME`] of them (`"chat gpt-4o"`: `chat`, `gpt`, `4o`). Every store splits
/// names this way (ClickHouse with `extractAll(lower(name), '[a-z0-9]+')`).
pub fn name_words(name: &str) -> impl Iterator<Item = String> + '_ {
    words(name).take(WORDS_PER_NAME)
}

/// Every word of `text`, split as [`name_words`] splits names: what a search looks for.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

/// The keys to delete, at the trace's old start `old_start`, before its new `keys` are written
/// at `start`: all of them when the start moved (a span arrived earlier), and the words of
/// `old_root` that the new keys lack (a parent arrived after its child and is now the root).
/// Every other key only grows as spans arrive.
pub fn forgotten_keys(
    (old_start, old_root): (i64, Option<&str>),
    start: i64,
    keys: &BTreeSet<String>,
) -> Vec<String> {
    let stale = old_root
        .into_iter()
        .flat_map(name_words)
        .map(|w| key('w', &w))
        .filter(|k| !keys.contains(k));
    let moved = (old_start != start).then(|| keys.iter().cloned());
    stale.chain(moved.into_iter().flatten()).collect()
}

/// The keys a listed trace must have to match `q` (all of them).
pub fn list_keys(q: &TraceQuery) -> Vec<String> {
    let mut keys = filter_keys(&q.filter);
    keys.extend(
        [('u', &q.user), ('x', &q.session)]
            .into_iter()
            .filter_map(|(kind, v)| v.as_deref().map(|v| key(kind, v))),
    );
    if q.errors_only {
        keys.push(ERROR_KEY.to_owned());
    }
    keys.extend(q.words.iter().map(|w| key('w', w)));
    keys
}

/// The keys a listed trace must have to match `filter` (all of them).
pub fn filter_keys(filter: &Filter) -> Vec<String> {
    [
        ('s', &filter.service),
        ('m', &filter.model),
        ('p', &filter.provider),
    ]
    .into_iter()
    .filter_map(|(kind, v)| v.as_deref().map(|v| key(kind, v)))
    .collect()
}

/// The summary of one trace from all of its spans (none may be missing), and its filter keys.
/// The root is the earliest span without a parent (the earliest span when none is a root);
/// model calls sharing a response id are one call, counted with their largest usage and cost.
pub fn summarize_trace(trace_id: &str, spans: &[SpanBrief]) -> (TraceSummary, BTreeSet<String>) {
    let root = spans.iter().min_by(|a, b| {
        (!a.is_root, a.start_ns, &a.span_id).cmp(&(!b.is_root, b.start_ns, &b.span_id))
    });
    let mut summary = TraceSummary {
        trace_id: trace_id.to_owned(),
        service: root.and_then(|r| r.service.clone()),
        root_name: root.map(|r| r.name.clone()),
        start_ns: spans.iter().map(|s| s.start_ns).min().unwrap_or(0),
        duration_ns: 0,
        span_count: spans.len() as i64,
        llm_calls: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: None,
        error: spans.iter().any(|s| s.error),
    };
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    summary.duration_ns = (end - summary.start_ns).max(0);

    // One entry per call: (input tokens, output tokens, cost), each the largest seen.
    let mut calls: HashMap<&str, (i64, i64, Option<f64>)> = HashMap::new();
    for s in spans.iter().filter(|s| s.is_model_call) {
        let id = s.response_id.as_deref().unwrap_or(&s.span_id);
        let call = calls.entry(id).or_insert((0, 0, None));
        call.0 = call.0.max(s.input_tokens.unwrap_or(0));
        call.1 = call.1.max(s.output_tokens.unwrap_or(0));
        if let Some(c) = s.cost_usd {
            call.2 = Some(call.2.map_or(c, |seen: f64| seen.max(c)));
        }
    }
    // Summed in a fixed order so every store adds the same floats the same way.
    let mut calls: Vec<_> = calls.into_iter().collect();
    calls.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (_, (input, output, cost)) in calls {
        summary.llm_calls += 1;
        summary.input_tokens += input;
        summary.output_tokens += output;
        if let Some(c) = cost {
            summary.cost_usd = Some(summary.cost_usd.unwrap_or(0.0) + c);
        }
    }

    let mut keys = BTreeSet::new();
    for s in spans {
        for (kind, value) in [
            ('s', &s.service),
            ('m', &s.request_model),
            ('m', &s.response_model),
            ('p', &s.provider),
            ('u', &s.user_id),
            ('x', &s.session_id),
        ] {
            if let Some(v) = value {
                keys.insert(key(kind, v));
            }
        }
    }
    // Words of the root's name only: every span's would cost ~130 bytes a span in SQLite.
    if let Some(root) = root {
        keys.extend(name_words(&root.name).map(|w| key('w', &w)));
    }
    if summary.error {
        keys.insert(ERROR_KEY.to_owned());
    }
    (summary, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_arriving_after_its_child_makes_the_childs_words_stale() {
        let keys: BTreeSet<String> = ["w:agent".to_owned(), "w:chat".to_owned()].into();
        assert_eq!(
            forgotten_keys((5, Some("Chat gpt-4o")), 5, &keys),
            ["w:gpt", "w:4o"]
        );
        assert!(forgotten_keys((5, None), 5, &keys).is_empty());
        // A start that moved takes every key along.
        assert_eq!(
            forgotten_keys((5, Some("agent")), 4, &keys),
            ["w:agent", "w:chat"]
        );
    }

    #[test]
    fn names_split_into_lowercase_ascii_words_eight_at_most() {
        let words: Vec<String> = name_words("Chat GPT-4o (v2) résumé_tool").collect();
        assert_eq!(words, ["chat", "gpt", "4o", "v2", "r", "sum", "tool"]);
        assert_eq!(name_words("a b c d e f g h i j").count(), WORDS_PER_NAME);
        assert_eq!(name_words(" -- ").count(), 0);
    }

    fn brief(id: &str, start: i64) -> SpanBrief {
        SpanBrief {
            span_id: id.into(),
            name: format!("span {id}"),
            start_ns: start,
            end_ns: start + 10,
            ..Default::default()
        }
    }

    #[test]
    fn one_row_per_trace_with_calls_counted_once() {
        let root = SpanBrief {
            is_root: true,
            service: Some("api".into()),
            ..brief("a", 5)
        };
        let call = |id: &str, response: &str, input, cost| SpanBrief {
            is_model_call: true,
            response_id: Some(response.into()),
            input_tokens: Some(input),
            output_tokens: Some(3),
            cost_usd: cost,
            request_model: Some("gpt-4o".into()),
            provider: Some("openai".into()),
            service: Some("worker".into()),
            ..brief(id, 7)
        };
        let spans = [
            call("b", "r1", 100, None),
            call("c", "r1", 120, Some(0.5)),
            call("d", "r2", 10, Some(0.25)),
            SpanBrief {
                error: true,
                ..brief("e", 1)
            },
            root,
        ];
        let (t, keys) = summarize_trace("t", &spans);
        assert_eq!(t.root_name.as_deref(), Some("span a"));
        assert_eq!(t.service.as_deref(), Some("api"));
        assert_eq!((t.start_ns, t.duration_ns, t.span_count), (1, 16, 5));
        assert_eq!((t.llm_calls, t.input_tokens, t.output_tokens), (2, 130, 6));
        assert_eq!(t.cost_usd, Some(0.75));
        assert!(t.error);
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            [
                "e:", "m:gpt-4o", "p:openai", "s:api", "s:worker", "w:a", "w:span"
            ],
            "an error span gives the trace the error key; the root's words (`span a`) are keys"
        );
    }

    #[test]
    fn without_a_root_the_earliest_span_names_the_trace() {
        let (t, _) = summarize_trace("t", &[brief("b", 9), brief("a", 3)]);
        assert_eq!(t.root_name.as_deref(), Some("span a"));
        assert_eq!(t.cost_usd, None);
        assert_eq!(t.llm_calls, 0);
    }
}
