//! Items the OTLP data model forbids (spans without a valid trace or span id, log records with
//! ids of the wrong length) and score records that break the score rules
//! (`llmscope_core::score`). They are removed and reported through `partial_success`; the rest
//! of the request is accepted.

use llmscope_core::Payload;
use llmscope_core::score::{self, Score};

use super::Accepted;

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|b| *b != 0)
}

fn empty_or_valid(id: &[u8], len: usize) -> bool {
    id.is_empty() || id.len() == len
}

/// Why an item was refused: the `reason` label of `llmscope_receiver_refused_items_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    InvalidId,
    InvalidScore,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::InvalidId => "invalid_id",
            Reason::InvalidScore => "invalid_score",
        }
    }
}

/// Removes invalid items; returns how many and a message naming the first problem, and how
/// many for each reason.
pub fn drop_invalid(payload: &mut Payload) -> (Accepted, Vec<(Reason, u64)>) {
    let mut rejected = 0i64;
    let mut first: Option<String> = None;
    let mut reasons: Vec<(Reason, u64)> = Vec::new();
    let mut note = |reason: Reason, what: String| {
        rejected += 1;
        first.get_or_insert(what);
        match reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => reasons.push((reason, 1)),
        }
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
                            Reason::InvalidId,
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
                    if !(empty_or_valid(&l.trace_id, 16) && empty_or_valid(&l.span_id, 8)) {
                        note(
                            Reason::InvalidId,
                            "log record has an invalid trace or span id length".into(),
                        );
                        return false;
                    }
                    if score::is_score(l)
                        && let Err(problem) = Score::check(l)
                    {
                        note(Reason::InvalidScore, format!("score refused: {problem}"));
                        return false;
                    }
                    true
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
    (Accepted { rejected, message }, reasons)
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
        let (accepted, reasons) = drop_invalid(&mut batch.payload);
        assert_eq!(accepted.rejected, 2);
        assert_eq!(reasons, vec![(Reason::InvalidId, 2)]);
        assert!(
            accepted.message.contains("zero trace"),
            "{}",
            accepted.message
        );
        let names: Vec<_> = spans_of(&batch).iter().map(|s| s.name.clone()).collect();
        assert_eq!(names, vec!["ok"]);
    }

    #[test]
    fn invalid_scores_are_removed_and_reported_apart() {
        use llmscope_core::otlp::logs::v1::LogRecord;
        use llmscope_core::test_util::{kv, logs};

        let score = |value: f64, trace: u8| LogRecord {
            event_name: score::SCORE_EVENT.into(),
            trace_id: vec![trace; 16],
            attributes: vec![
                kv(score::SCORE_NAME, "helpfulness"),
                kv(score::SCORE_VALUE, value),
            ],
            ..Default::default()
        };
        let event = LogRecord {
            event_name: "user.feedback".into(),
            ..Default::default()
        };
        let mut batch = logs(
            "svc",
            vec![score(0.5, 1), score(f64::INFINITY, 1), score(1.0, 0), event],
        );
        let (accepted, reasons) = drop_invalid(&mut batch.payload);
        assert_eq!(accepted.rejected, 2);
        assert_eq!(reasons, vec![(Reason::InvalidScore, 2)]);
        assert!(
            accepted.message.starts_with(
                "2 items refused; first: score refused: llmscope.score.value must be finite"
            ),
            "{}",
            accepted.message
        );
        let llmscope_core::Payload::Logs(rl) = &batch.payload else {
            panic!("logs")
        };
        assert_eq!(rl[0].scope_logs[0].log_records.len(), 2);
    }
}
