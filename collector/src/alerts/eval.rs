//! One rule's evaluation: the value of each series over the rule's window, read from the query
//! store (rollups where they answer, as every summary does), and the state machine that turns a
//! series' stored state and its new value into a transition.
//!
//! States: `ok` (not stored), `pending` (the condition holds, for less than `for`), `firing`,
//! `no_data` (no value and `no_data: alerting`). Notified: `firing`, `resolved` (from `firing` or
//! `no_data` back to `ok`), `no_data`, and `firing` again every `renotify` while it lasts.

use std::collections::BTreeMap;

use llmscope_exporters::metadata::alerts::SeriesState;
use llmscope_exporters::query::{
    AnomalyQuery, Filter, GroupBy, QueryStore, Result, SummaryGroup, SummaryQuery,
};
use serde_json::Value as J;

use super::rule::{Dimension, Metric, NoData, Rule};

/// Anomaly events read per evaluation at most (counts saturate there).
const MAX_ANOMALIES: usize = 10_000;

/// A series' labels: the rule's group dimension and its value (`null` for calls without one).
pub type Labels = BTreeMap<String, J>;

/// The canonical stored form of a series' labels.
pub fn series_key(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".into())
}

/// The value of each series the store has data for, over `[now - window, now)`.
pub async fn observe(
    rule: &Rule,
    project: &str,
    store: &dyn QueryStore,
    now_ns: i64,
) -> Result<Vec<(Labels, Option<f64>)>> {
    let window = i64::try_from(rule.window.as_nanos()).unwrap_or(i64::MAX);
    let f = &rule.spec.filter;
    let filter = Filter {
        project: project.to_owned(),
        service: f.service.clone(),
        model: f.model.clone(),
        provider: if rule.spec.metric == Metric::Anomalies {
            None
        } else {
            f.provider.clone()
        },
        from_ns: Some(now_ns.saturating_sub(window)),
        to_ns: Some(now_ns),
    };
    let dimension = rule.dimension();
    // (group key, value) pairs, before grouped rules become series.
    let grouped: Vec<(Option<String>, Option<f64>)> = if rule.spec.metric == Metric::Anomalies {
        let rows = store
            .anomalies(&AnomalyQuery {
                filter,
                kind: f.kind.clone(),
                limit: MAX_ANOMALIES,
            })
            .await?;
        let mut counts: BTreeMap<Option<String>, f64> = BTreeMap::new();
        for row in rows {
            let key = match dimension {
                Some(Dimension::Kind) => Some(row.kind),
                Some(Dimension::Summary(GroupBy::Service)) => row.service,
                Some(Dimension::Summary(GroupBy::Model)) => row.model,
                _ => None,
            };
            *counts.entry(key).or_default() += 1.0;
        }
        counts.into_iter().map(|(k, n)| (k, Some(n))).collect()
    } else {
        let group_by = match dimension {
            Some(Dimension::Summary(g)) => g,
            _ => GroupBy::Service,
        };
        let mut groups = store
            .summary(&SummaryQuery {
                filter,
                group_by,
                bucket_ns: None,
            })
            .await?;
        // The filters the store does not apply (and those it does, harmlessly) pick the group.
        let pinned = match group_by {
            GroupBy::User => &f.user,
            GroupBy::Session => &f.session,
            GroupBy::Operation => &f.operation,
            GroupBy::Service => &f.service,
            GroupBy::Provider => &f.provider,
            GroupBy::Model => &None,
        };
        if let Some(p) = pinned {
            groups.retain(|g| g.key.as_deref() == Some(p.as_str()));
        }
        if rule.group_by.is_some() {
            groups
                .iter()
                .map(|g| (g.key.clone(), value(rule.spec.metric, g)))
                .collect()
        } else {
            vec![(None, combined(rule.spec.metric, &groups))]
        }
    };
    let Some(d) = rule.group_by else {
        let value = grouped.into_iter().find_map(|(_, v)| v);
        // A count with nothing counted is zero; anything else has no value without calls.
        let value = value.or_else(|| rule.spec.metric.is_count().then_some(0.0));
        return Ok(vec![(Labels::new(), value)]);
    };
    Ok(grouped
        .into_iter()
        .map(|(key, v)| {
            let label = key.map_or(J::Null, J::String);
            (Labels::from([(d.name().to_owned(), label)]), v)
        })
        .collect())
}

fn value(metric: Metric, g: &SummaryGroup) -> Option<f64> {
    let calls = g.requests > 0;
    Some(match metric {
        Metric::Requests => g.requests as f64,
        Metric::Errors => g.errors as f64,
        Metric::ErrorRate if calls => g.error_rate(),
        Metric::CostUsd => g.cost_usd.unwrap_or(0.0),
        Metric::InputTokens => g.input_tokens as f64,
        Metric::OutputTokens => g.output_tokens as f64,
        Metric::TotalTokens => (g.input_tokens + g.output_tokens) as f64,
        Metric::LatencyP50Ms if calls => g.latency.p50_ms,
        Metric::LatencyP95Ms if calls => g.latency.p95_ms,
        Metric::LatencyP99Ms if calls => g.latency.p99_ms,
        _ => return None,
    })
}

/// One value over every group: counts add up; the error rate is recomputed; a percentile is
/// exact only for one group (a rule checks that it asks for one), so the largest group's is
/// taken if a model filter matched two (request and response model).
fn combined(metric: Metric, groups: &[SummaryGroup]) -> Option<f64> {
    if groups.is_empty() {
        return None;
    }
    if metric.is_latency() {
        let largest = groups.iter().max_by_key(|g| g.requests)?;
        return value(metric, largest);
    }
    let mut total = SummaryGroup::empty(None, None);
    for g in groups {
        total.requests += g.requests;
        total.errors += g.errors;
        total.input_tokens += g.input_tokens;
        total.output_tokens += g.output_tokens;
        if let Some(c) = g.cost_usd {
            total.cost_usd = Some(total.cost_usd.unwrap_or(0.0) + c);
        }
    }
    value(metric, &total)
}

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Firing,
    Resolved,
    NoData,
}

impl Kind {
    pub fn event_type(self) -> &'static str {
        match self {
            Kind::Firing => "alert.firing",
            Kind::Resolved => "alert.resolved",
            Kind::NoData => "alert.no_data",
        }
    }
}

/// A change to one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The series afterwards; `None` when it is back to `ok` (no longer stored).
    pub next: Option<SeriesState>,
    /// The state recorded in the history (`pending`, `firing`, `resolved`, `no_data`, `ok`).
    pub recorded: &'static str,
    pub notify: Option<Kind>,
    /// When the condition began (for `firing`, `resolved` and `no_data` notifications).
    pub started_ns: i64,
}

/// The next state of a series, or `None` when nothing changes. `value` is `None` when the
/// series has no data.
pub fn step(
    rule: &Rule,
    rule_id: &str,
    series: &str,
    prev: Option<&SeriesState>,
    value: Option<f64>,
    now_ns: i64,
) -> Option<Change> {
    let state = prev.map_or("ok", |p| p.state.as_str());
    let since = prev.map_or(now_ns, |p| p.since_ns);
    let for_ns = i64::try_from(rule.for_.as_nanos()).unwrap_or(i64::MAX);
    let stored = |state: &str, since_ns: i64, notified_ns: Option<i64>| SeriesState {
        rule_id: rule_id.to_owned(),
        series: series.to_owned(),
        state: state.to_owned(),
        since_ns,
        notified_ns,
        value,
        version: now_ns,
    };
    let change = |next, recorded, notify, started_ns| {
        Some(Change {
            next,
            recorded,
            notify,
            started_ns,
        })
    };
    let renotify_due = || {
        rule.renotify.is_some_and(|every| {
            let every = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX);
            prev.and_then(|p| p.notified_ns)
                .is_some_and(|at| now_ns.saturating_sub(at) >= every)
        })
    };
    let holds = match value {
        Some(v) => rule.spec.op.holds(v, rule.spec.threshold),
        None => match rule.spec.no_data {
            NoData::Keep => return None,
            NoData::Ok => false,
            NoData::Alerting => {
                return match state {
                    "no_data" if renotify_due() => change(
                        Some(stored("no_data", since, Some(now_ns))),
                        "no_data",
                        Some(Kind::NoData),
                        since,
                    ),
                    "no_data" => None,
                    _ => change(
                        Some(stored("no_data", now_ns, Some(now_ns))),
                        "no_data",
                        Some(Kind::NoData),
                        now_ns,
                    ),
                };
            }
        },
    };
    match (state, holds) {
        ("ok", true) if for_ns == 0 => change(
            Some(stored("firing", now_ns, Some(now_ns))),
            "firing",
            Some(Kind::Firing),
            now_ns,
        ),
        ("ok", true) => change(
            Some(stored("pending", now_ns, None)),
            "pending",
            None,
            now_ns,
        ),
        ("pending", true) if now_ns.saturating_sub(since) >= for_ns => change(
            Some(stored("firing", since, Some(now_ns))),
            "firing",
            Some(Kind::Firing),
            since,
        ),
        ("firing", true) if renotify_due() => change(
            Some(stored("firing", since, Some(now_ns))),
            "firing",
            Some(Kind::Firing),
            since,
        ),
        ("no_data", true) => change(
            Some(stored("firing", now_ns, Some(now_ns))),
            "firing",
            Some(Kind::Firing),
            now_ns,
        ),
        ("pending", false) => change(None, "ok", None, since),
        ("firing" | "no_data", false) => change(None, "resolved", Some(Kind::Resolved), since),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: i64 = 1_000_000_000;

    fn rule(extra: J) -> Rule {
        let mut r = json!({"name": "r", "metric": "errors", "window": "5m", "op": ">",
                           "threshold": 2});
        for (k, v) in extra.as_object().expect("object") {
            r[k] = v.clone();
        }
        Rule::from_json(r.to_string().as_bytes()).expect("valid")
    }

    /// Runs values through the machine, one per second, returning what was recorded.
    fn run(rule: &Rule, values: &[Option<f64>]) -> Vec<(i64, &'static str, Option<Kind>)> {
        let mut state: Option<SeriesState> = None;
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let now = (i as i64 + 1) * S;
            if let Some(c) = step(rule, "r1", "{}", state.as_ref(), *v, now) {
                out.push((i as i64 + 1, c.recorded, c.notify));
                state = c.next;
            }
        }
        out
    }

    #[test]
    fn fires_at_once_and_resolves() {
        let r = rule(json!({}));
        let got = run(&r, &[Some(1.0), Some(3.0), Some(5.0), Some(0.0), Some(0.0)]);
        assert_eq!(
            got,
            [
                (2, "firing", Some(Kind::Firing)),
                (4, "resolved", Some(Kind::Resolved))
            ]
        );
    }

    #[test]
    fn for_delays_firing_and_a_dip_cancels_pending() {
        let r = rule(json!({"for": "2s"}));
        let got = run(
            &r,
            &[
                Some(3.0),
                Some(3.0),
                Some(1.0),
                Some(3.0),
                Some(3.0),
                Some(3.0),
            ],
        );
        assert_eq!(
            got,
            [
                (1, "pending", None),
                (3, "ok", None),
                (4, "pending", None),
                (6, "firing", Some(Kind::Firing))
            ]
        );
    }

    #[test]
    fn renotify_repeats_while_firing() {
        let r = rule(json!({"renotify": "2s"}));
        let got = run(&r, &[Some(3.0); 5]);
        let notified: Vec<i64> = got.iter().map(|g| g.0).collect();
        assert_eq!(notified, [1, 3, 5]);
    }

    #[test]
    fn no_data_follows_the_rule() {
        let alerting = rule(json!({"no_data": "alerting"}));
        let got = run(&alerting, &[Some(1.0), None, None, Some(1.0)]);
        assert_eq!(
            got,
            [
                (2, "no_data", Some(Kind::NoData)),
                (4, "resolved", Some(Kind::Resolved))
            ]
        );
        let keep = rule(json!({"no_data": "keep"}));
        assert_eq!(run(&keep, &[Some(3.0), None, None]).len(), 1);
        let ok = rule(json!({}));
        let got = run(&ok, &[Some(3.0), None]);
        assert_eq!(got[1], (2, "resolved", Some(Kind::Resolved)));
    }
}
