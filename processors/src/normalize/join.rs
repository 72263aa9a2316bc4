//! One model call described by two spans that share no response id, joined. The *head* is a
//! model-call span without a response id; the *tail* a model-call span with usage and a
//! response id. Two shapes, the same for every library:
//! - **A split call**: the head has no usage either (a streamed call whose span ends when the
//!   stream is handed back); the tail finishes it (Logfire's `streaming response ... took ...`
//!   log span, a framework's provider-level child span). They name the same provider and
//!   request model, the tail is the head's child or sibling in one trace, or both are trace
//!   roots (Logfire emits its log in a trace of its own when the call has no parent span), and
//!   the tail starts no earlier than the head and at most [`WINDOW_NS`] after the head ends. A
//!   head without usage is never a call by itself, so two real calls are never merged.
//! - **Twins**: the head has usage too (a framework's span, such as LangChain's `ChatOpenAI`,
//!   beside or around the provider instrumentation's span of the same call, e.g. a streamed
//!   call whose framework result carries no response id). They name the same provider, are in
//!   one trace, report the same input and output tokens, and the tail lies within the head's
//!   time. Two real calls of one trace with equal usage would have to nest in time to be taken
//!   for twins.
//!
//! Heads are taken in start order, each joins the earliest tail left that fits, and a tail
//! joins one head at most.
//!
//! A joined head takes the tail's response id (every store counts a call once per response id),
//! and what it lacks of the tail's response: model, usage, output messages, finish reasons. Its
//! end moves to the end of the call (the tail's end, or its start when the tail is a zero-length
//! log), the original kept in `llmscope.span.original_end_time_unix_nano`; the tail's span id
//! is noted in `llmscope.call.joined_span_id`.

use llmscope_core::attr;
use llmscope_core::otlp::common::v1::KeyValue;
use llmscope_core::otlp::trace::v1::{ResourceSpans, Span};
use llmscope_core::semconv as sc;

/// Longest gap between a head's end and its tail's start.
pub const WINDOW_NS: u64 = 10 * 60 * 1_000_000_000;

/// What a head takes from its tail when it has none of its own.
const RESPONSE_KEYS: &[&str] = &[
    sc::RESPONSE_ID,
    sc::RESPONSE_MODEL,
    sc::RESPONSE_FINISH_REASONS,
    sc::OUTPUT_MESSAGES,
    sc::USAGE_INPUT_TOKENS,
    sc::USAGE_OUTPUT_TOKENS,
    sc::USAGE_CACHE_READ_INPUT_TOKENS,
    sc::USAGE_CACHE_CREATION_INPUT_TOKENS,
    sc::USAGE_REASONING_OUTPUT_TOKENS,
];

fn has_usage(attrs: &[KeyValue]) -> bool {
    attr::has(attrs, sc::USAGE_INPUT_TOKENS) || attr::has(attrs, sc::USAGE_OUTPUT_TOKENS)
}

fn is_head(span: &Span) -> bool {
    sc::is_model_call(&span.attributes) && !attr::has(&span.attributes, sc::RESPONSE_ID)
}

fn is_tail(span: &Span) -> bool {
    sc::is_model_call(&span.attributes)
        && has_usage(&span.attributes)
        && attr::has(&span.attributes, sc::RESPONSE_ID)
}

fn same(a: &Span, b: &Span, keys: &[&str]) -> bool {
    keys.iter()
        .all(|k| attr::get(&a.attributes, k) == attr::get(&b.attributes, k))
}

/// Whether `tail` finishes the call `head` starts (a split call) or describes it again (twins).
fn fits(head: &Span, tail: &Span) -> bool {
    if !has_usage(&head.attributes) {
        return same(head, tail, &[sc::PROVIDER_NAME, sc::REQUEST_MODEL])
            && related(head, tail)
            && in_window(head, tail);
    }
    head.trace_id == tail.trace_id
        && same(
            head,
            tail,
            &[
                sc::PROVIDER_NAME,
                sc::USAGE_INPUT_TOKENS,
                sc::USAGE_OUTPUT_TOKENS,
            ],
        )
        && tail.start_time_unix_nano >= head.start_time_unix_nano
        && tail.end_time_unix_nano <= head.end_time_unix_nano
}

fn related(head: &Span, tail: &Span) -> bool {
    if head.trace_id == tail.trace_id {
        tail.parent_span_id == head.span_id
            || (!tail.parent_span_id.is_empty() && tail.parent_span_id == head.parent_span_id)
    } else {
        head.parent_span_id.is_empty() && tail.parent_span_id.is_empty()
    }
}

fn in_window(head: &Span, tail: &Span) -> bool {
    tail.start_time_unix_nano >= head.start_time_unix_nano
        && tail.start_time_unix_nano <= head.end_time_unix_nano.saturating_add(WINDOW_NS)
}

/// Joins the split calls among the spans of one resource. Returns how many were joined.
pub fn join(rs: &mut ResourceSpans) -> usize {
    // (scope index, span index) of every head and tail.
    let mut heads = Vec::new();
    let mut tails = Vec::new();
    for (si, scope) in rs.scope_spans.iter().enumerate() {
        for (i, span) in scope.spans.iter().enumerate() {
            if is_head(span) {
                heads.push((si, i));
            } else if is_tail(span) {
                tails.push((si, i));
            }
        }
    }
    if heads.is_empty() || tails.is_empty() {
        return 0;
    }
    let at = |(si, i): (usize, usize)| &rs.scope_spans[si].spans[i];
    heads.sort_by_key(|&h| at(h).start_time_unix_nano);
    tails.sort_by_key(|&t| at(t).start_time_unix_nano);
    // Pair first (nothing is changed while pairing: a joined head is not looked at again), then
    // give each head what it takes from its tail.
    let mut taken = vec![false; tails.len()];
    let mut pairs = Vec::new();
    for head in heads {
        if let Some(t) = (0..tails.len()).find(|&t| !taken[t] && fits(at(head), at(tails[t]))) {
            taken[t] = true;
            pairs.push((head, tails[t]));
        }
    }
    for &(head, tail) in &pairs {
        let tail = &rs.scope_spans[tail.0].spans[tail.1];
        let response: Vec<_> = RESPONSE_KEYS
            .iter()
            .filter_map(|key| Some((*key, attr::get(&tail.attributes, key)?.clone())))
            .collect();
        let end = tail.end_time_unix_nano.max(tail.start_time_unix_nano);
        let tail_id = hex::encode(&tail.span_id);
        let out = &mut rs.scope_spans[head.0].spans[head.1];
        for (key, value) in response {
            if !attr::has(&out.attributes, key) {
                attr::set(&mut out.attributes, key, value);
            }
        }
        if end > out.end_time_unix_nano {
            let original = i64::try_from(out.end_time_unix_nano).unwrap_or(i64::MAX);
            attr::set(
                &mut out.attributes,
                sc::ORIGINAL_END_TIME,
                attr::int(original),
            );
            out.end_time_unix_nano = end;
        }
        attr::set(
            &mut out.attributes,
            sc::CALL_JOINED_SPAN,
            attr::string(tail_id),
        );
    }
    pairs.len()
}

#[cfg(test)]
mod tests {
    use llmscope_core::test_util::{fixtures, spans_of};
    use llmscope_core::{Payload, Processor};

    use super::*;
    use crate::normalize::Normalize;

    #[test]
    fn logfire_streamed_calls_are_joined_to_the_log_that_finished_them() {
        let mut batch = fixtures::traces_batch(fixtures::LOGFIRE_OPENAI_CHAT);
        Normalize::default().process(&mut batch).expect("normalize");
        let spans = spans_of(&batch);
        let calls: Vec<_> = spans
            .iter()
            .filter(|s| s.name.starts_with("Chat Completion"))
            .collect();
        assert_eq!(calls.len(), 3);
        let ids: Vec<_> = calls
            .iter()
            .map(|s| attr::get_str(&s.attributes, sc::RESPONSE_ID))
            .collect();
        assert_eq!(
            ids,
            [
                Some("chatcmpl-rec1"),
                Some("chatcmpl-rec2"),
                Some("chatcmpl-rec3")
            ]
        );
        for streamed in &calls[1..] {
            assert_eq!(
                attr::get_i64(&streamed.attributes, sc::USAGE_INPUT_TOKENS),
                Some(42)
            );
            let joined = attr::get_str(&streamed.attributes, sc::CALL_JOINED_SPAN).expect("joined");
            let tail = spans
                .iter()
                .find(|s| hex::encode(&s.span_id) == joined)
                .expect("tail");
            assert!(
                tail.name
                    .starts_with("streaming response from 'gpt-4o-mini'")
            );
            assert_eq!(streamed.end_time_unix_nano, tail.start_time_unix_nano);
            assert!(attr::has(&streamed.attributes, sc::ORIGINAL_END_TIME));
        }
        assert!(
            !attr::has(&calls[0].attributes, sc::CALL_JOINED_SPAN),
            "complete on its own"
        );
        let Payload::Traces(_) = &batch.payload else {
            unreachable!()
        };
    }

    /// A chat span of `trace`, parent `parent` (0: none), from `start` to `end` ms, with usage
    /// and a response id when given.
    fn call(
        trace: u8,
        id: u8,
        parent: u8,
        start: u64,
        end: u64,
        usage: Option<i64>,
        response: Option<&str>,
    ) -> Span {
        use llmscope_core::test_util::kv;
        let mut attributes = vec![
            kv(sc::OPERATION_NAME, "chat"),
            kv(sc::PROVIDER_NAME, "openai"),
            kv(sc::REQUEST_MODEL, "gpt-4o-mini"),
        ];
        if let Some(n) = usage {
            attributes.push(kv(sc::USAGE_INPUT_TOKENS, n));
            attributes.push(kv(sc::USAGE_OUTPUT_TOKENS, 7i64));
        }
        if let Some(r) = response {
            attributes.push(kv(sc::RESPONSE_ID, r));
        }
        Span {
            trace_id: vec![trace; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 {
                Vec::new()
            } else {
                vec![parent; 8]
            },
            start_time_unix_nano: start * 1_000_000,
            end_time_unix_nano: end * 1_000_000,
            attributes,
            ..Default::default()
        }
    }

    fn joined(spans: Vec<Span>) -> Vec<Option<String>> {
        let mut rs = ResourceSpans {
            scope_spans: vec![llmscope_core::otlp::trace::v1::ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        join(&mut rs);
        rs.scope_spans[0]
            .spans
            .iter()
            .map(|s| attr::get_str(&s.attributes, sc::RESPONSE_ID).map(str::to_owned))
            .collect()
    }

    #[test]
    fn two_real_calls_are_never_merged() {
        // Two heads, one tail: only the earlier head takes it.
        let ids = joined(vec![
            call(1, 1, 9, 0, 10, None, None),
            call(1, 2, 9, 5, 15, None, None),
            call(1, 3, 9, 20, 20, Some(42), Some("r1")),
        ]);
        assert_eq!(ids, [Some("r1".into()), None, Some("r1".into())]);
        // Equal usage one after the other, not nested: two calls, not twins.
        let ids = joined(vec![
            call(1, 1, 9, 0, 10, Some(42), None),
            call(1, 2, 9, 20, 30, Some(42), Some("r2")),
        ]);
        assert_eq!(ids, [None, Some("r2".into())]);
        // Nested twins with other usage: two calls.
        let ids = joined(vec![
            call(1, 1, 9, 0, 30, Some(41), None),
            call(1, 2, 9, 10, 20, Some(42), Some("r3")),
        ]);
        assert_eq!(ids, [None, Some("r3".into())]);
        // A tail in another trace joins only a root head.
        let ids = joined(vec![
            call(1, 1, 9, 0, 10, None, None),
            call(2, 2, 0, 15, 15, Some(42), Some("r4")),
        ]);
        assert_eq!(ids, [None, Some("r4".into())]);
        // Past the window: not the same call.
        let late = WINDOW_NS / 1_000_000 + 11;
        let ids = joined(vec![
            call(1, 1, 0, 0, 10, None, None),
            call(2, 2, 0, late, late, Some(42), Some("r5")),
        ]);
        assert_eq!(ids, [None, Some("r5".into())]);
    }

    #[test]
    fn twins_nested_in_time_with_equal_usage_are_one_call() {
        let ids = joined(vec![
            call(1, 1, 9, 0, 30, Some(42), None),
            call(1, 2, 9, 10, 20, Some(42), Some("r6")),
        ]);
        assert_eq!(ids, [Some("r6".into()), Some("r6".into())]);
    }
}
