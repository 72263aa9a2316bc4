//! Summary aggregation over model-call rows, for stores without pre-aggregated rollups.

use std::collections::BTreeMap;

/// One model call, already deduplicated by response id, with its group key.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRow {
    pub key: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub error: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SummaryGroup {
    /// The group's value; `None` for calls without one (e.g. no user id).
    pub key: Option<String>,
    pub bucket_start_ns: Option<i64>,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    /// `None` when no call in the group has a cost.
    pub cost_usd: Option<f64>,
    pub latency: Latency,
}

impl SummaryGroup {
    /// A group with nothing counted yet.
    pub fn empty(key: Option<String>, bucket_start_ns: Option<i64>) -> Self {
        Self {
            key,
            bucket_start_ns,
            requests: 0,
            errors: 0,
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cost_usd: None,
            latency: Latency::default(),
        }
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// Groups calls by key (and bucket), ordered by bucket, then by requests descending, then key.
pub fn summarize(calls: Vec<CallRow>, bucket_ns: Option<i64>) -> Vec<SummaryGroup> {
    // (bucket, key) -> the group and its call durations, for percentiles.
    type Groups = BTreeMap<(Option<i64>, Option<String>), (SummaryGroup, Vec<i64>)>;
    let mut groups = Groups::new();
    for call in calls {
        let bucket = bucket_ns
            .filter(|b| *b > 0)
            .map(|b| call.start_ns.div_euclid(b) * b);
        let (g, durations) = groups
            .entry((bucket, call.key.clone()))
            .or_insert_with(|| (SummaryGroup::empty(call.key.clone(), bucket), Vec::new()));
        g.requests += 1;
        g.errors += i64::from(call.error);
        g.input_tokens += call.input_tokens;
        g.output_tokens += call.output_tokens;
        g.cache_read_tokens += call.cache_read_tokens;
        if let Some(c) = call.cost_usd {
            g.cost_usd = Some(g.cost_usd.unwrap_or(0.0) + c);
        }
        durations.push(call.duration_ns);
    }
    let mut out: Vec<SummaryGroup> = groups
        .into_values()
        .map(|(mut g, mut durations)| {
            durations.sort_unstable();
            g.latency = Latency {
                p50_ms: percentile_ms(&durations, 0.50),
                p95_ms: percentile_ms(&durations, 0.95),
                p99_ms: percentile_ms(&durations, 0.99),
            };
            g
        })
        .collect();
    sort_groups(&mut out);
    out
}

/// The order every store answers in: by bucket, then requests descending, then key.
pub fn sort_groups(groups: &mut [SummaryGroup]) {
    groups.sort_by(|a, b| {
        a.bucket_start_ns
            .cmp(&b.bucket_start_ns)
            .then(b.requests.cmp(&a.requests))
            .then(a.key.cmp(&b.key))
    });
}

/// Nearest-rank percentile of sorted nanosecond durations, in milliseconds.
fn percentile_ms(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index] as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(key: &str, start_ns: i64, ms: i64, error: bool) -> CallRow {
        CallRow {
            key: Some(key.into()),
            start_ns,
            duration_ns: ms * 1_000_000,
            error,
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 1,
            cost_usd: None,
        }
    }

    #[test]
    fn groups_sum_and_take_nearest_rank_percentiles() {
        let mut calls: Vec<CallRow> = (1..=100).map(|i| call("a", 0, i, i % 10 == 0)).collect();
        calls.push(call("b", 0, 7, false));
        let groups = summarize(calls, None);
        assert_eq!(groups.len(), 2);
        let a = &groups[0];
        assert_eq!(a.key.as_deref(), Some("a"));
        assert_eq!((a.requests, a.errors, a.input_tokens), (100, 10, 1000));
        assert_eq!(a.error_rate(), 0.1);
        assert_eq!(
            a.latency,
            Latency {
                p50_ms: 50.0,
                p95_ms: 95.0,
                p99_ms: 99.0
            }
        );
        assert_eq!(a.cost_usd, None);
        assert_eq!(groups[1].latency.p99_ms, 7.0);
    }

    #[test]
    fn buckets_align_to_their_width() {
        let hour = 3_600_000_000_000;
        let groups = summarize(
            vec![
                call("a", hour + 5, 1, false),
                call("a", 2 * hour + 1, 1, false),
                call("a", hour, 1, false),
            ],
            Some(hour),
        );
        let buckets: Vec<_> = groups
            .iter()
            .map(|g| (g.bucket_start_ns, g.requests))
            .collect();
        assert_eq!(buckets, vec![(Some(hour), 2), (Some(2 * hour), 1)]);
    }
}
