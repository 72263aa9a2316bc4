//! One model call described by two spans that share no response id, joined: a *head* that
//! starts the call (a model-call span with neither usage nor a response id, such as a streamed
//! call whose span ends when the stream is handed back) and a *tail* that finishes it (a
//! model-call span with usage and a response id: Logfire's `streaming response ... took ...`
//! log span, a framework's provider-level child span).
//!
//! The rule, the same for every library:
//! - head and tail are in one resource, name the same provider and request model, and are
//!   related: the tail is the head's child or sibling in one trace, or both are trace roots
//!   (Logfire emits its log in a trace of its own when the call has no parent span);
//! - the tail starts no earlier than the head and at most [`WINDOW`] after the head ends;
//! - heads are taken in start order, each joins the earliest tail left, and a tail joins one
//!   head at most. A head is never a call by itself (it has no response), so two real calls
//!   are never merged into one.
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
    sc::is_model_call(&span.attributes)
        && !has_usage(&span.attributes)
        && !attr::has(&span.attributes, sc::RESPONSE_ID)
}

fn is_tail(span: &Span) -> bool {
    sc::is_model_call(&span.attributes)
        && has_usage(&span.attributes)
        && attr::has(&span.attributes, sc::RESPONSE_ID)
}

fn same_call_kind(a: &Span, b: &Span) -> bool {
    [sc::PROVIDER_NAME, sc::REQUEST_MODEL]
        .iter()
        .all(|k| attr::get_str(&a.attributes, k) == attr::get_str(&b.attributes, k))
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
    let span = |rs: &ResourceSpans, (si, i): (usize, usize)| -> Span {
        rs.scope_spans[si].spans[i].clone()
    };
    let start = |rs: &ResourceSpans, at: &(usize, usize)| {
        rs.scope_spans[at.0].spans[at.1].start_time_unix_nano
    };
    heads.sort_by_key(|at| start(rs, at));
    tails.sort_by_key(|at| start(rs, at));
    let mut taken = vec![false; tails.len()];
    let mut joined = 0;
    for head_at in heads {
        let head = span(rs, head_at);
        let Some(t) = (0..tails.len()).find(|&t| {
            let tail = &rs.scope_spans[tails[t].0].spans[tails[t].1];
            !taken[t]
                && same_call_kind(&head, tail)
                && related(&head, tail)
                && in_window(&head, tail)
        }) else {
            continue;
        };
        taken[t] = true;
        let tail = span(rs, tails[t]);
        let out = &mut rs.scope_spans[head_at.0].spans[head_at.1];
        for key in RESPONSE_KEYS {
            if !attr::has(&out.attributes, key)
                && let Some(value) = attr::get(&tail.attributes, key)
            {
                attr::set(&mut out.attributes, key, value.clone());
            }
        }
        let end = tail.end_time_unix_nano.max(tail.start_time_unix_nano);
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
            attr::string(hex::encode(&tail.span_id)),
        );
        joined += 1;
    }
    joined
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
}
