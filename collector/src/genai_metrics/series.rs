//! Bounded metric series: a table per metric holds at most `limit` label sets; an observation
//! with a new label set past the limit goes to the table's overflow series (labelled
//! `otel_metric_overflow="true"`, keeping only the labels that cannot grow, such as the token
//! type), so totals stay right while the series count stays bounded.

use std::collections::{BTreeMap, HashMap};

use prometheus::proto;

/// Separates the label values of a series key: one string, so a series that exists is found
/// without allocating. Values never hold it ([`push_value`] replaces it).
pub const SEP: char = '\u{1f}';

/// Appends a label value to a series key being built.
pub fn push_value(key: &mut String, value: &str) {
    if !key.is_empty() {
        key.push(SEP);
    }
    if value.contains(SEP) {
        key.push_str(&value.replace(SEP, "\u{fffd}"));
    } else {
        key.push_str(value);
    }
}

/// The conventions' explicit bucket boundaries for `gen_ai.client.token.usage`.
pub const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// The conventions' explicit bucket boundaries for `gen_ai.client.operation.duration`
/// (seconds).
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// An explicit-bucket histogram: per-bucket counts (the last is above every bound), sum, count.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    pub bounds: &'static [f64],
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Hist {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.counts[i] += 1;
        self.sum += value;
        self.count += 1;
    }

    /// Cumulative counts per bound (`le`), as Prometheus wants them.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let mut seen = 0;
        self.bounds.iter().zip(&self.counts).map(move |(le, n)| {
            seen += n;
            (*le, seen)
        })
    }
}

/// The value one series holds.
pub trait Value: Clone {
    fn prometheus(&self, sample: &mut proto::Metric);
}

impl Value for Hist {
    fn prometheus(&self, sample: &mut proto::Metric) {
        let mut h = proto::Histogram::default();
        h.set_sample_count(self.count);
        h.set_sample_sum(self.sum);
        h.set_bucket(
            self.cumulative()
                .map(|(le, n)| {
                    let mut b = proto::Bucket::default();
                    b.set_upper_bound(le);
                    b.set_cumulative_count(n);
                    b
                })
                .collect(),
        );
        sample.set_histogram(h);
    }
}

impl Value for f64 {
    fn prometheus(&self, sample: &mut proto::Metric) {
        let mut c = proto::Counter::default();
        c.set_value(*self);
        sample.set_counter(c);
    }
}

/// One metric's series, at most `limit` of them plus the overflow ones.
#[derive(Debug)]
pub struct Table<V> {
    pub name: &'static str,
    pub help: &'static str,
    /// Prometheus label names, in key order.
    pub labels: Vec<String>,
    /// How many of the key's last values are kept on an overflow series (they cannot grow).
    pub bounded: usize,
    limit: usize,
    empty: V,
    pub series: HashMap<Box<str>, V, foldhash::fast::RandomState>,
    pub overflow: BTreeMap<Box<str>, V>,
}

impl<V: Value> Table<V> {
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: Vec<String>,
        bounded: usize,
        limit: usize,
        empty: V,
    ) -> Self {
        Self {
            name,
            help,
            labels,
            bounded,
            limit,
            empty,
            series: HashMap::default(),
            overflow: BTreeMap::new(),
        }
    }

    /// The series of `key`, or its overflow series when `key` is new and the table is full;
    /// the flag says which.
    /// Allocates only for a new series.
    pub fn cell(&mut self, key: &str) -> (&mut V, bool) {
        if !self.series.contains_key(key) && self.series.len() < self.limit {
            self.series.insert(key.into(), self.empty.clone());
        }
        if self.series.contains_key(key) {
            let cell = self.series.get_mut(key).expect("present");
            return (cell, false);
        }
        // The key's last `bounded` values.
        let kept = match self.bounded {
            0 => "",
            n => key
                .rmatch_indices(SEP)
                .nth(n - 1)
                .map_or(key, |(at, _)| &key[at + SEP.len_utf8()..]),
        };
        if !self.overflow.contains_key(kept) {
            self.overflow.insert(kept.into(), self.empty.clone());
        }
        (self.overflow.get_mut(kept).expect("present"), true)
    }

    /// Every series, sorted by labels, with their label pairs (names as given).
    pub fn samples<'a>(
        &'a self,
        names: &'a [String],
        overflow_label: (&'a str, &'a str),
    ) -> Vec<(Vec<(&'a str, &'a str)>, &'a V)> {
        let mut out: Vec<_> = self
            .series
            .iter()
            .map(|(key, v)| {
                let pairs: Vec<(&str, &str)> = names
                    .iter()
                    .map(String::as_str)
                    .zip(key.split(SEP))
                    .collect();
                (pairs, v)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let kept = &names[names.len() - self.bounded..];
        for (key, v) in &self.overflow {
            let mut pairs: Vec<_> = kept
                .iter()
                .map(String::as_str)
                .zip(key.split(SEP))
                .collect();
            pairs.insert(0, overflow_label);
            out.push((pairs, v));
        }
        out
    }

    /// The table as a Prometheus family.
    pub fn family(&self, kind: proto::MetricType) -> proto::MetricFamily {
        let samples = self
            .samples(&self.labels, ("otel_metric_overflow", "true"))
            .into_iter()
            .map(|(pairs, v)| {
                let pairs = pairs
                    .into_iter()
                    .map(|(k, v)| {
                        let mut p = proto::LabelPair::default();
                        p.set_name(k.to_owned());
                        p.set_value(v.to_owned());
                        p
                    })
                    .collect();
                let mut sample = proto::Metric::from_label(pairs);
                v.prometheus(&mut sample);
                sample
            })
            .collect();
        let mut family = proto::MetricFamily::default();
        family.set_name(self.name.to_owned());
        family.set_help(self.help.to_owned());
        family.set_field_type(kind);
        family.set_metric(samples);
        family
    }

    /// How many series the table holds, overflow ones included.
    pub fn series_count(&self) -> usize {
        self.series.len() + self.overflow.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(parts: &[&str]) -> String {
        let mut k = String::new();
        for p in parts {
            push_value(&mut k, p);
        }
        k
    }

    #[test]
    fn histograms_bucket_by_upper_bound_inclusive() {
        let mut h = Hist::new(TOKEN_BUCKETS);
        for v in [1.0, 2.0, 4.0, 5.0, 1e9] {
            h.observe(v);
        }
        let cumulative: Vec<_> = h.cumulative().take(3).collect();
        assert_eq!(cumulative, [(1.0, 1), (4.0, 3), (16.0, 4)]);
        assert_eq!(h.cumulative().last(), Some((67108864.0, 4)));
        assert_eq!((h.count, h.sum), (5, 1e9 + 12.0));
    }

    #[test]
    fn new_series_past_the_limit_share_an_overflow_series_keeping_bounded_labels() {
        let mut t = Table::new("t", "T.", vec!["user".into(), "type".into()], 1, 2, 0.0f64);
        for (user, ty) in [
            ("a", "in"),
            ("b", "in"),
            ("c", "in"),
            ("d", "out"),
            ("a", "in"),
        ] {
            let (v, overflowed) = t.cell(&key(&[user, ty]));
            *v += 1.0;
            assert_eq!(overflowed, !matches!(user, "a" | "b"));
        }
        assert_eq!(t.series_count(), 4);
        let samples = t.samples(&t.labels, ("overflow", "true"));
        let flat: Vec<_> = samples.iter().map(|(p, v)| (p.clone(), **v)).collect();
        assert_eq!(
            flat,
            [
                (vec![("user", "a"), ("type", "in")], 2.0),
                (vec![("user", "b"), ("type", "in")], 1.0),
                (vec![("overflow", "true"), ("type", "in")], 1.0),
                (vec![("overflow", "true"), ("type", "out")], 1.0),
            ]
        );
    }
}
