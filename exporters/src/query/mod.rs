//! The one read interface over every store, so the API answers the same whichever store holds
//! the data. Stores return rows; the shaping shared by all of them lives here.

mod events;
pub mod rollup;
mod summary;
pub mod trace_list;

pub use events::{
    EventQuery, EventRow, ScoreGroup, ScoredCall, group_scores, score_summary, scores_query,
};
pub use summary::{CallRow, Latency, SummaryGroup, sort_groups, summarize};

use crate::record::{AnomalyRow, SpanRecord};

pub use llmscope_core::BoxFuture;

/// A read from a store failed; the message is for the log, not for the client.
#[derive(Debug, thiserror::Error)]
#[error("query failed: {0}")]
pub struct QueryError(pub String);

pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Content that arrived as GenAI log events, `(span id, [input, output, system])` in time order,
/// fills the spans that have none of their own: arrays are concatenated per span.
pub fn join_event_content(
    spans: &mut [SpanRecord],
    events: impl IntoIterator<Item = (String, [Option<String>; 3])>,
) {
    use std::collections::HashMap;

    use serde_json::Value as J;

    let mut found: HashMap<String, [Vec<J>; 3]> = HashMap::new();
    for (span_id, content) in events {
        let entry = found.entry(span_id).or_default();
        for (slot, text) in entry.iter_mut().zip(content) {
            let Some(text) = text else { continue };
            match serde_json::from_str(&text) {
                Ok(J::Array(items)) => slot.extend(items),
                Ok(other) => slot.push(other),
                Err(_) => slot.push(J::String(text)),
            }
        }
    }
    for span in spans.iter_mut() {
        let Some([input, output, system]) = found.remove(&span.span_id) else {
            continue;
        };
        let g = &mut span.gen_ai;
        for (field, items) in [
            (&mut g.input_messages, input),
            (&mut g.output_messages, output),
            (&mut g.system_instructions, system),
        ] {
            if field.is_none() && !items.is_empty() {
                *field = Some(J::Array(items).to_string());
            }
        }
    }
}

/// Filters shared by the trace list and the summary. Times are Unix nanoseconds, `from`
/// inclusive and `to` exclusive; `model` matches the request or the response model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub project: String,
    pub service: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
}

/// Position after the last trace of a page: traces are listed newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub start_ns: i64,
    pub trace_id: String,
}

impl Cursor {
    /// An opaque token for clients.
    pub fn encode(&self) -> String {
        format!("{}-{}", self.start_ns, self.trace_id)
    }

    pub fn decode(token: &str) -> Option<Self> {
        let (start, trace_id) = token.split_once('-')?;
        let valid_id = trace_id.len() == 32 && trace_id.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Self {
            start_ns: start.parse().ok()?,
            trace_id: valid_id.then(|| trace_id.to_ascii_lowercase())?,
        })
    }
}

/// One page of the trace list. Beside `filter` (whose service, model and provider match any
/// span of a trace), the list alone filters by `user` and `session` (any span's `user.id`,
/// `session.id`), to traces with an error (any span's status), and by `words` of the trace's
/// name (the root span's, as [`trace_list::name_words`] splits it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    pub filter: Filter,
    pub user: Option<String>,
    pub session: Option<String>,
    pub errors_only: bool,
    pub words: Vec<String>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

/// One trace in the list. Tokens and cost count each model call once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceSummary {
    pub trace_id: String,
    pub service: Option<String>,
    pub root_name: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub span_count: i64,
    pub llm_calls: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    pub error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TracePage {
    pub traces: Vec<TraceSummary>,
    pub next_cursor: Option<Cursor>,
}

impl TracePage {
    /// A page from up to `limit + 1` traces newest first (stores fetch one more than the page to
    /// know whether another page follows): the first `limit`, and a cursor after the last of
    /// them when more exist.
    pub fn paginate(mut traces: Vec<TraceSummary>, limit: usize) -> Self {
        let next_cursor = if traces.len() > limit {
            traces.truncate(limit);
            traces.last().map(|t| Cursor {
                start_ns: t.start_ns,
                trace_id: t.trace_id.clone(),
            })
        } else {
            None
        };
        Self {
            traces,
            next_cursor,
        }
    }
}

/// What analytics group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Model,
    Provider,
    Service,
    Operation,
    User,
    Session,
}

impl GroupBy {
    pub const ALL: [GroupBy; 6] = [
        GroupBy::Model,
        GroupBy::Provider,
        GroupBy::Service,
        GroupBy::Operation,
        GroupBy::User,
        GroupBy::Session,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Service => "service",
            GroupBy::Operation => "operation",
            GroupBy::User => "user",
            GroupBy::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SummaryQuery {
    pub filter: Filter,
    pub group_by: GroupBy,
    /// Bucket width in nanoseconds; `None` for one row per group over the whole range.
    pub bucket_ns: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyQuery {
    pub filter: Filter,
    /// Only this kind (`latency`, `cost`, ...).
    pub kind: Option<String>,
    pub limit: usize,
}

/// A store the query API can read.
pub trait QueryStore: Send + Sync + 'static {
    /// Traces newest first, one page.
    fn traces<'a>(&'a self, query: &'a TraceQuery) -> BoxFuture<'a, Result<TracePage>>;

    /// Every span of one trace ordered by start time, with message content joined from GenAI
    /// log events where the span has none; `None` when the trace is unknown.
    fn trace<'a>(
        &'a self,
        project: &'a str,
        trace_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<SpanRecord>>>>;

    /// Model-call aggregates per group (and bucket).
    fn summary<'a>(&'a self, query: &'a SummaryQuery) -> BoxFuture<'a, Result<Vec<SummaryGroup>>>;

    /// Anomaly events, newest first.
    fn anomalies<'a>(&'a self, query: &'a AnomalyQuery) -> BoxFuture<'a, Result<Vec<AnomalyRow>>>;

    /// Custom events and scores (`query::events`), newest first.
    fn events<'a>(&'a self, query: &'a EventQuery) -> BoxFuture<'a, Result<Vec<EventRow>>>;

    /// The model calls in `query`'s filter of the traces that have a score named `score`
    /// ([`scores_query`]), each span with its group key; not deduplicated by response id, so a
    /// score naming any span of a call finds it.
    fn scored_calls<'a>(
        &'a self,
        query: &'a SummaryQuery,
        score: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ScoredCall>>>;

    /// Whether the store answers at all.
    fn ready(&self) -> BoxFuture<'_, Result<()>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            start_ns: 1_700_000_000_000_000_000,
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "x-y", "12-abc", "abc-0af7651916cd43dd8448eb211c80319c"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
