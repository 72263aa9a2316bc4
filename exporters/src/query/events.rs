//! Custom events and scores as the API reads them, and a score's count and mean per summary
//! group.
//!
//! A custom event is a log record with an event name, except the GenAI content events
//! (`gen_ai.*`, which are a span's messages). Scores are events too, named `llmscope.score`
//! (`llmscope_core::score`); receivers refuse invalid ones, so every stored one parses.
//!
//! A score counts toward the summary groups of the model calls it judges: the call it names by
//! span id, or, when it names the trace alone or a span that is no model call in the range (an
//! agent step, say), every call of its trace in the range, once per group and bucket. Calls are
//! those of the summary's filter; a score given long after its call still counts (scores are read
//! from an hour before the range on).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use llmscope_core::score::{SCORE_EVENT, Score};

use super::{Filter, QueryStore, Result, SummaryQuery};
use crate::record::JsonMap;

/// Scores may be stamped by another machine's clock than their call's.
const SCORE_CLOCK_SLACK_NS: i64 = 3_600_000_000_000;

/// Which custom events, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub project: String,
    /// Exactly this event name.
    pub name: Option<String>,
    /// Only scores of this name (with `name` = `llmscope.score`).
    pub score_name: Option<String>,
    pub trace_id: Option<String>,
    pub service: Option<String>,
    /// Event times, `from` inclusive and `to` exclusive, Unix nanoseconds.
    pub from_ns: Option<i64>,
    pub to_ns: Option<i64>,
    pub limit: usize,
}

impl EventQuery {
    /// Every event of one trace.
    pub fn of_trace(project: &str, trace_id: &str, limit: usize) -> Self {
        Self {
            project: project.to_owned(),
            name: None,
            score_name: None,
            trace_id: Some(trace_id.to_owned()),
            service: None,
            from_ns: None,
            to_ns: None,
            limit,
        }
    }
}

/// One custom event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub time_ns: i64,
    pub name: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub service: Option<String>,
    pub severity_text: Option<String>,
    /// The body as JSON, when the record had one.
    pub body: Option<serde_json::Value>,
    pub attributes: JsonMap,
}

impl EventRow {
    /// The score this event is, if it is one.
    pub fn score(&self) -> Option<Score> {
        if self.name != SCORE_EVENT {
            return None;
        }
        Score::from_json(&self.attributes).ok()
    }
}

/// A model call of a scored trace, with its summary group key.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCall {
    pub trace_id: String,
    pub span_id: String,
    pub key: Option<String>,
    pub start_ns: i64,
}

/// A score's count and mean (`None` for categories) in one summary group.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreGroup {
    pub key: Option<String>,
    pub bucket_start_ns: Option<i64>,
    pub count: i64,
    pub mean: Option<f64>,
}

/// The events that are scores named `name`, in the range a summary over `filter` can judge.
pub fn scores_query(filter: &Filter, name: &str) -> EventQuery {
    EventQuery {
        project: filter.project.clone(),
        name: Some(SCORE_EVENT.to_owned()),
        score_name: Some(name.to_owned()),
        trace_id: None,
        service: None,
        from_ns: filter
            .from_ns
            .map(|f| f.saturating_sub(SCORE_CLOCK_SLACK_NS)),
        to_ns: None,
        limit: usize::MAX,
    }
}

/// Count and mean of the scores named `name` per group (and bucket) of `query`'s summary.
pub async fn score_summary(
    store: &dyn QueryStore,
    query: &SummaryQuery,
    name: &str,
) -> Result<Vec<ScoreGroup>> {
    let scores_query = scores_query(&query.filter, name);
    let (scores, calls) =
        tokio::try_join!(store.events(&scores_query), store.scored_calls(query, name))?;
    Ok(group_scores(&scores, &calls, query.bucket_ns))
}

/// See the module docs.
pub fn group_scores(
    scores: &[EventRow],
    calls: &[ScoredCall],
    bucket_ns: Option<i64>,
) -> Vec<ScoreGroup> {
    let bucket = |start: i64| {
        bucket_ns
            .filter(|b| *b > 0)
            .map(|b| start.div_euclid(b) * b)
    };
    let mut by_trace: HashMap<&str, Vec<&ScoredCall>> = HashMap::new();
    for call in calls {
        by_trace.entry(&call.trace_id).or_default().push(call);
    }
    type Key = (Option<i64>, Option<String>);
    let mut sums: BTreeMap<Key, (i64, f64, i64)> = BTreeMap::new();
    for event in scores {
        let (Some(score), Some(trace_id)) = (event.score(), &event.trace_id) else {
            continue;
        };
        let Some(trace_calls) = by_trace.get(trace_id.as_str()) else {
            continue;
        };
        let named: Vec<&ScoredCall> = trace_calls
            .iter()
            .copied()
            .filter(|c| Some(&c.span_id) == event.span_id.as_ref())
            .collect();
        let judged = if named.is_empty() {
            trace_calls
        } else {
            &named
        };
        let groups: BTreeSet<Key> = judged
            .iter()
            .map(|c| (bucket(c.start_ns), c.key.clone()))
            .collect();
        for group in groups {
            let (count, sum, numbers) = sums.entry(group).or_default();
            *count += 1;
            if let Some(n) = score.value.as_number() {
                *sum += n;
                *numbers += 1;
            }
        }
    }
    sums.into_iter()
        .map(
            |((bucket_start_ns, key), (count, sum, numbers))| ScoreGroup {
                key,
                bucket_start_ns,
                count,
                mean: (numbers > 0).then(|| sum / numbers as f64),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn score(trace: &str, span: Option<&str>, value: serde_json::Value) -> EventRow {
        let attributes = json!({"llmscope.score.name": "helpful", "llmscope.score.value": value});
        EventRow {
            time_ns: 0,
            name: SCORE_EVENT.into(),
            trace_id: Some(trace.into()),
            span_id: span.map(Into::into),
            service: None,
            severity_text: None,
            body: None,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
        }
    }

    fn call(trace: &str, span: &str, model: &str, start_ns: i64) -> ScoredCall {
        ScoredCall {
            trace_id: trace.into(),
            span_id: span.into(),
            key: Some(model.into()),
            start_ns,
        }
    }

    #[test]
    fn a_score_counts_for_the_call_it_names_else_for_each_group_of_its_trace() {
        let calls = [
            call("t1", "a", "gpt", 10),
            call("t1", "b", "gpt", 20),
            call("t1", "c", "claude", 30),
            call("t2", "d", "claude", 110),
        ];
        let scores = [
            score("t1", None, json!(1.0)),          // gpt and claude, once each
            score("t1", Some("c"), json!(0.0)),     // claude only
            score("t1", Some("root"), json!(true)), // not a call: the whole trace
            score("t2", None, json!("great")),      // a category: counted, no mean
            score("t9", None, json!(1.0)),          // no call in range
        ];
        let groups = group_scores(&scores, &calls, None);
        let view: Vec<_> = groups
            .iter()
            .map(|g| (g.key.as_deref(), g.count, g.mean))
            .collect();
        assert_eq!(
            view,
            vec![
                (Some("claude"), 4, Some((1.0 + 0.0 + 1.0) / 3.0)),
                (Some("gpt"), 2, Some(1.0)),
            ]
        );
        // Per bucket, a trace-level score counts in each bucket its calls fall in.
        let groups = group_scores(&scores[..1], &calls, Some(100));
        let view: Vec<_> = groups
            .iter()
            .map(|g| (g.bucket_start_ns, g.key.as_deref(), g.count))
            .collect();
        assert_eq!(
            view,
            vec![(Some(0), Some("claude"), 1), (Some(0), Some("gpt"), 1)]
        );
    }
}
