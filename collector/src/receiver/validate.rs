//! Items the OTLP data model forbids: spans without a valid trace or span id, log records with
//! ids of the wrong length. They are removed and reported through `partial_success`; the rest
//! of the request is accepted.

use llmscope_core::Payload;

use super::Accepted;

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

fn empty_or_valid(id: &[u8], len: usize) -> bool {
    id.is_empty() || id.len() == len
}

/// Removes invalid items; returns how many and a message naming the first problem.
pub fn drop_invalid(payload: &mut Payload) -> Accepted {
    let mut rejected = 0i64;
    let mut first: Option<String> = None;
    let mut note = |rejected: &mut i64, what: String| {
        *rejected += 1;
        first.get_or_insert(what);
    };
    match payload {
        Payload::Traces(rs) => {
            for ss in rs.iter_mut().flat_map(|r| r.scope_spans.iter_mut()) {
                ss.spans.retain(|s| {
                    let ok = valid_id(&s.trace_id, 16)
                        && valid_id(&s.span_id, 8)
                        && empty_or_valid(&s.parent_span_id, 8);
                    if !ok {
                        note(
                            &mut rejected,
                            format!(
                                "span {:?} has an invalid id (trace id must be 16 non-zero bytes, span id 8)",
                                s.name
                            ),
                        );
                    }
                    ok
                });
            }
        }
        Payload::Logs(rl) => {
            for sl in rl.iter_mut().flat_map(|r| r.scope_logs.iter_mut()) {
                sl.log_records.retain(|l| {
                    let ok = empty_or_valid(&l.trace_id, 16) && empty_or_valid(&l.span_id, 8);
                    if !ok {
                        note(
                            &mut rejected,
                            "log record has an invalid trace or span id length".into(),
                        );
                    }
                    ok
                });
            }
        }
        Payload::Metrics(_) => {}
    }
    let message = match first {
        Some(m) if rejected > 1 => format!("{rejected} items refused; first: {m}"),
        Some(m) => m,
        None => String::new(),
    };
    Accepted { rejected, message }
}

#[cfg(test)]
mod tests {
    use llmscope_core::test_util::{span, spans_of, traces};

    use super::*;

    #[test]
    fn spans_with_invalid_ids_are_removed_and_reported() {
        let mut zero = span(0, 1, "zero trace", vec![]);
        zero.trace_id = vec![0; 16];
        let mut short = span(1, 2, "short span", vec![]);
        short.span_id = vec![1; 4];
        let mut batch = traces("svc", vec![span(1, 1, "ok", vec![]), zero, short]);
        let accepted = drop_invalid(&mut batch.payload);
        assert_eq!(accepted.rejected, 2);
        assert!(
            accepted.message.contains("zero trace"),
            "{}",
            accepted.message
        );
        let names: Vec<_> = spans_of(&batch).iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, vec!["ok"]);
    }
}
