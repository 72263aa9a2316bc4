//! Summary rollups kept at write time, and how a summary combines them with raw rows.
//!
//! Each store recomputes, for every trace a batch touched, the trace's model calls before and
//! after the batch ([`calls`]) and adds the difference ([`add_change`]) to hourly and daily rollup
//! rows (weekly too for users and sessions, [`Dim::widths`]): one series per (service, provider,
//! request model, response model, operation), one per user and one per session. A call's user
//! and session are its span's, else the trace's (the root's, else the earliest span's that has
//! one), so a root arriving after its calls moves them to their user. Latency is kept as a
//! log-scale histogram ([`Hist`]). A user's or session's row also keeps its calls per series
//! ([`Parts`], keyed by [`Series::id`]; each store keeps the ids' series in a small dictionary),
//! so user and session summaries with a service, provider or model filter are answered from the
//! rollups too (ClickHouse answers user and session summaries from raw rows).
//!
//! A response id is one call wherever its spans are (Logfire, for one, reports a streamed call
//! in a second trace): the call belongs to the trace of its representative span, the one with
//! the most complete usage (tokens, then cost), then the earliest ([`Owners`]). A store looks
//! up every span sharing a response id with the touched traces, so it knows the owner before
//! and after the batch, and also changes the traces that lose or win a call.
//!
//! Guarantees: rollups are a pure function of the stored spans, whatever the order, batching or
//! retries of their arrival; a summary ([`plan`]) answers whole hours, days and weeks from them
//! and only the partial hours at the range's edges from raw rows, so its counts, tokens and cost
//! equal the raw answer and its latency quantiles are within 10% of it. SQLite and PostgreSQL
//! use these functions, so they agree. ClickHouse keeps its call rollups in materialized views
//! (`sql/clickhouse/`) with the same histogram buckets, and answers by the same [`plan`].

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::FixedState;

use super::trace_list::SpanBrief;
use super::{CallRow, GroupBy, Latency, SummaryGroup, SummaryQuery, sort_groups};

pub const HOUR_NS: i64 = 3_600_000_000_000;
pub const DAY_NS: i64 = 24 * HOUR_NS;
/// Weeks from the Unix epoch (a Thursday): user and session rows only, so a month's summary
/// reads each user's four or five weeks rather than thirty days.
pub const WEEK_NS: i64 = 7 * DAY_NS;

/// Latency histogram buckets: bucket `i` covers `(1.1^(i-1), 1.1^i]` ms, bucket 0 up to 1 ms.
pub const HIST_BUCKETS: usize = 200;
const HIST_BASE: f64 = 1.1;

fn hist_index(ms: f64) -> u8 {
    if ms <= 1.0 {
        return 0;
    }
    ((ms.ln() / HIST_BASE.ln()).ceil() as usize).min(HIST_BUCKETS - 1) as u8
}

/// Call counts per latency bucket, sorted by bucket; only non-zero buckets are kept (a few, so a
/// sorted vector merges faster than a tree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hist(Vec<(u8, i64)>);

impl Hist {
    pub fn add_ns(&mut self, duration_ns: i64, n: i64) {
        self.add_bucket(hist_index(duration_ns as f64 / 1e6), n);
    }

    fn add_bucket(&mut self, bucket: u8, n: i64) {
        match self.0.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) => {
                self.0[i].1 += n;
                if self.0[i].1 == 0 {
                    self.0.remove(i);
                }
            }
            Err(i) if n != 0 => self.0.insert(i, (bucket, n)),
            Err(_) => {}
        }
    }

    /// A histogram from `(bucket, count)` pairs (a store that sums them itself).
    pub fn from_counts(counts: impl IntoIterator<Item = (u8, i64)>) -> Self {
        let mut hist = Hist::default();
        for (bucket, n) in counts {
            hist.add_bucket(bucket.min(HIST_BUCKETS as u8 - 1), n);
        }
        hist
    }

    pub fn merge(&mut self, other: &Hist, sign: i64) {
        for &(bucket, n) in &other.0 {
            self.add_bucket(bucket, sign * n);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank quantiles, each the upper bound of its bucket (within 10%).
    pub fn latency(&self) -> Latency {
        let total: i64 = self.0.iter().map(|(_, n)| n).sum();
        let at = |q: f64| {
            if total <= 0 {
                return 0.0;
            }
            let rank = ((q * total as f64).ceil() as i64).clamp(1, total);
            let mut seen = 0;
            for &(bucket, n) in &self.0 {
                seen += n;
                if seen >= rank {
                    return HIST_BASE.powi(i32::from(bucket));
                }
            }
            HIST_BASE.powi(HIST_BUCKETS as i32)
        };
        Latency {
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
        }
    }

    /// `(bucket, count)` pairs, the count as a LEB128 varint: a few bytes per bucket used.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 3);
        for &(bucket, n) in &self.0 {
            out.push(bucket);
            put_varint(&mut out, n.max(0) as u64);
        }
        out
    }

    /// The inverse of [`Hist::encode`]; a truncated tail is ignored.
    pub fn decode(bytes: &[u8]) -> Self {
        let mut hist = Hist::default();
        hist.merge_encoded(bytes);
        hist
    }

    /// Adds an encoded histogram ([`Hist::encode`]) to this one.
    pub fn merge_encoded(&mut self, mut bytes: &[u8]) {
        while let [bucket, rest @ ..] = bytes {
            bytes = rest;
            let Some(n) = take_varint(&mut bytes) else {
                break;
            };
            self.add_bucket(*bucket, n as i64);
        }
    }
}

/// Which summaries a rollup series serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dim {
    /// Model, provider, service and operation, with any filter.
    Calls,
    /// Per user, unfiltered.
    User,
    /// Per session, unfiltered.
    Session,
}

impl Dim {
    pub const ALL: [Dim; 3] = [Dim::Calls, Dim::User, Dim::Session];

    pub fn code(self) -> &'static str {
        match self {
            Dim::Calls => "c",
            Dim::User => "u",
            Dim::Session => "s",
        }
    }

    /// The widths of this dimension's rows.
    pub fn widths(self) -> &'static [i64] {
        match self {
            Dim::Calls => &[HOUR_NS, DAY_NS],
            Dim::User | Dim::Session => &[HOUR_NS, DAY_NS, WEEK_NS],
        }
    }

    pub fn for_group(group_by: GroupBy) -> Self {
        match group_by {
            GroupBy::User => Dim::User,
            GroupBy::Session => Dim::Session,
            _ => Dim::Calls,
        }
    }
}

/// One rollup row's identity. Text is `""` where a call has no value; `Calls` rows leave
/// `value` empty, `User` and `Session` rows everything but `value`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Series {
    pub service: String,
    pub provider: String,
    pub model: String,
    pub response_model: String,
    pub operation: String,
    pub value: String,
}

impl Series {
    /// The call series' identity in [`Parts`]: a stable hash of everything but `value` (a
    /// collision, about 2^-64 per pair of a project's series, would count one series' calls
    /// under the other's filter).
    pub fn id(&self) -> i64 {
        crate::record::stable_hash(&[
            self.service.as_bytes(),
            self.provider.as_bytes(),
            self.model.as_bytes(),
            self.response_model.as_bytes(),
            self.operation.as_bytes(),
        ])
    }

    /// The SQL expression of a rollup row's group in `group_by` (`''` for calls without a
    /// value): a model summary groups by the request model, else the response model.
    pub fn group_sql(group_by: GroupBy) -> &'static str {
        match group_by {
            GroupBy::Model => "CASE WHEN model = '' THEN response_model ELSE model END",
            GroupBy::Provider => "provider",
            GroupBy::Service => "service",
            GroupBy::Operation => "operation",
            GroupBy::User | GroupBy::Session => "value",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    pub dim: Dim,
    pub width_ns: i64,
    pub start_ns: i64,
}

/// Sums of a set of calls.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sums {
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cost_usd: f64,
    /// Calls with a cost.
    pub priced: i64,
    pub hist: Hist,
    /// The same calls per series: user and session rows only.
    pub parts: Parts,
}

impl Sums {
    pub fn add_call(&mut self, c: &Call, sign: i64) {
        self.requests += sign;
        self.errors += sign * i64::from(c.error);
        self.input_tokens += sign * c.input_tokens;
        self.output_tokens += sign * c.output_tokens;
        self.cache_read_tokens += sign * c.cache_read_tokens;
        if let Some(cost) = c.cost_usd {
            self.cost_usd += sign as f64 * cost;
            self.priced += sign;
        }
        self.hist.add_ns(c.duration_ns, sign);
    }

    pub fn merge(&mut self, other: &Sums, sign: i64) {
        self.requests += sign * other.requests;
        self.errors += sign * other.errors;
        self.input_tokens += sign * other.input_tokens;
        self.output_tokens += sign * other.output_tokens;
        self.cache_read_tokens += sign * other.cache_read_tokens;
        self.cost_usd += sign as f64 * other.cost_usd;
        self.priced += sign * other.priced;
        self.hist.merge(&other.hist, sign);
        self.parts.merge(&other.parts, sign);
    }

    /// Nothing counted: a row with these sums is deleted.
    pub fn is_zero(&self) -> bool {
        self.requests == 0
            && self.errors == 0
            && self.input_tokens == 0
            && self.output_tokens == 0
            && self.cache_read_tokens == 0
            && self.priced == 0
            && self.hist.is_empty()
            && self.parts.0.is_empty()
    }

    /// Every field but `parts`, zigzag varints and the cost's 8 bytes, then the histogram.
    fn encode_into(&self, out: &mut Vec<u8>) {
        for v in [
            self.requests,
            self.errors,
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.priced,
        ] {
            put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
        }
        out.extend_from_slice(&self.cost_usd.to_le_bytes());
        out.extend_from_slice(&self.hist.encode());
    }

    /// The inverse of [`Sums::encode_into`]; `None` when `bytes` is cut short.
    fn decode(mut bytes: &[u8]) -> Option<Self> {
        let mut next = || {
            let v = take_varint(&mut bytes)?;
            Some((v >> 1) as i64 ^ -((v & 1) as i64))
        };
        let (requests, errors, input_tokens, output_tokens, cache_read_tokens, priced) =
            (next()?, next()?, next()?, next()?, next()?, next()?);
        let (cost, hist) = bytes.split_first_chunk::<8>()?;
        Some(Self {
            requests,
            errors,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cost_usd: f64::from_le_bytes(*cost),
            priced,
            hist: Hist::decode(hist),
            parts: Parts::default(),
        })
    }

    fn into_group(self, key: Option<String>, bucket_start_ns: Option<i64>) -> SummaryGroup {
        SummaryGroup {
            key,
            bucket_start_ns,
            requests: self.requests,
            errors: self.errors,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_tokens,
            cost_usd: (self.priced > 0).then_some(self.cost_usd),
            latency: self.hist.latency(),
        }
    }
}

/// A user's or session's sums per call series ([`Series::id`]), in one rollup row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parts(BTreeMap<i64, Sums>);

impl Parts {
    /// Adds `c`, whose series' id is `id` (hashed once per call by the caller).
    fn add_call(&mut self, id: i64, c: &Call, sign: i64) {
        let part = self.0.entry(id).or_default();
        part.add_call(c, sign);
        if part.is_zero() {
            self.0.remove(&id);
        }
    }

    fn merge(&mut self, other: &Parts, sign: i64) {
        for (id, sums) in &other.0 {
            let part = self.0.entry(*id).or_default();
            part.merge(sums, sign);
            if part.is_zero() {
                self.0.remove(id);
            }
        }
    }

    /// Each series as its id (8 bytes), the length of its sums (a varint), then the sums.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 28);
        let mut sums = Vec::with_capacity(32);
        for (id, part) in &self.0 {
            sums.clear();
            part.encode_into(&mut sums);
            out.extend_from_slice(&id.to_le_bytes());
            put_varint(&mut out, sums.len() as u64);
            out.extend_from_slice(&sums);
        }
        out
    }

    /// The inverse of [`Parts::encode`]; a truncated tail is ignored.
    pub fn decode(bytes: &[u8]) -> Self {
        let mut parts = Parts::default();
        for_each_part(bytes, |id, body| {
            if let Some(sums) = Sums::decode(body) {
                parts.0.insert(id, sums);
            }
        });
        parts
    }

    /// The sum of the encoded parts whose series `wanted` accepts, decoding only those.
    pub fn sum_encoded(bytes: &[u8], wanted: impl Fn(i64) -> bool) -> Sums {
        let mut total = Sums::default();
        for_each_part(bytes, |id, body| {
            if wanted(id)
                && let Some(sums) = Sums::decode(body)
            {
                total.merge(&sums, 1);
            }
        });
        total
    }
}

fn for_each_part(mut bytes: &[u8], mut f: impl FnMut(i64, &[u8])) {
    while let Some((id, rest)) = bytes.split_first_chunk::<8>() {
        let mut rest = rest;
        let Some(len) = take_varint(&mut rest).and_then(|n| usize::try_from(n).ok()) else {
            return;
        };
        let Some((body, tail)) = rest.split_at_checked(len) else {
            return;
        };
        f(i64::from_le_bytes(*id), body);
        bytes = tail;
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// A LEB128 varint from the front of `bytes`, which moves past it; `None` when cut short.
fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let (mut v, mut shift) = (0u64, 0);
    for (i, &b) in bytes.iter().enumerate() {
        v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
        shift += 7;
        if b & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(v);
        }
        if shift > 63 {
            return None;
        }
    }
    None
}

/// One model call as rollups and raw summaries count it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Call {
    pub series: Series,
    pub user: Option<String>,
    pub session: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub error: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cost_usd: Option<f64>,
}

/// The order in which spans of one call compete to represent it: the most complete usage, then
/// the earliest; the smallest wins.
fn rank<'a>(trace_id: &'a str, s: &'a SpanBrief) -> (bool, bool, i64, &'a str, &'a str) {
    (
        s.input_tokens.is_none(),
        s.cost_usd.is_none(),
        s.start_ns,
        &s.span_id,
        trace_id,
    )
}

/// Which trace each response id's call belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owners(HashMap<String, String>);

impl Owners {
    /// From every stored model-call span of the response ids concerned, with their traces.
    pub fn of<'a>(spans: impl IntoIterator<Item = (&'a str, &'a SpanBrief)>) -> Self {
        let mut best: HashMap<&str, (&str, &SpanBrief)> = HashMap::new();
        for (trace_id, s) in spans {
            let Some(id) = s.response_id.as_deref().filter(|_| s.is_model_call) else {
                continue;
            };
            best.entry(id)
                .and_modify(|b| {
                    if rank(trace_id, s) < rank(b.0, b.1) {
                        *b = (trace_id, s);
                    }
                })
                .or_insert((trace_id, s));
        }
        Self(
            best.into_iter()
                .map(|(id, (trace_id, _))| (id.to_owned(), trace_id.to_owned()))
                .collect(),
        )
    }

    /// Whether `trace_id` counts response `id`; a response id not looked up counts where seen.
    fn counts(&self, trace_id: &str, id: &str) -> bool {
        self.0.get(id).is_none_or(|owner| owner == trace_id)
    }
}

/// The response ids whose owners a batch can change or a trace's share depends on: those of
/// the model calls among `stored` (the touched traces' spans) and `batch`.
pub fn response_ids<'a>(
    stored: impl IntoIterator<Item = &'a SpanBrief>,
    batch: &[crate::record::SpanRecord],
) -> std::collections::BTreeSet<String> {
    let stored = stored
        .into_iter()
        .filter(|s| s.is_model_call)
        .filter_map(|s| s.response_id.clone());
    let batch = batch
        .iter()
        .filter(|s| s.gen_ai.is_model_call)
        .filter_map(|s| s.gen_ai.response_id.clone());
    stored.chain(batch).collect()
}

/// A trace's user and session, for its calls that have none: the root's, else the earliest
/// span's that has one.
pub fn trace_user_and_session(spans: &[SpanBrief]) -> (Option<String>, Option<String>) {
    let value = |get: fn(&SpanBrief) -> &Option<String>| {
        spans
            .iter()
            .filter(|s| get(s).is_some())
            .min_by(|a, b| {
                (!a.is_root, a.start_ns, &a.span_id).cmp(&(!b.is_root, b.start_ns, &b.span_id))
            })
            .and_then(|s| get(s).clone())
    };
    (value(|s| &s.user_id), value(|s| &s.session_id))
}

/// The model calls one trace counts, from all of its spans: of spans sharing a response id, the
/// representative, if this trace owns the call.
pub fn calls(trace_id: &str, spans: &[SpanBrief], owners: &Owners) -> Vec<Call> {
    let (trace_user, trace_session) = trace_user_and_session(spans);
    let mut chosen: HashMap<&str, &SpanBrief> = HashMap::new();
    for s in spans.iter().filter(|s| s.is_model_call) {
        let id = match s.response_id.as_deref() {
            Some(id) if !owners.counts(trace_id, id) => continue,
            Some(id) => id,
            None => &s.span_id,
        };
        chosen
            .entry(id)
            .and_modify(|c| {
                if rank(trace_id, s) < rank(trace_id, c) {
                    *c = s;
                }
            })
            .or_insert(s);
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut out: Vec<Call> = chosen
        .into_values()
        .map(|s| Call {
            series: Series {
                service: text(&s.service),
                provider: text(&s.provider),
                model: text(&s.request_model),
                response_model: text(&s.response_model),
                operation: text(&s.operation),
                value: String::new(),
            },
            user: s.user_id.clone().or_else(|| trace_user.clone()),
            session: s.session_id.clone().or_else(|| trace_session.clone()),
            start_ns: s.start_ns,
            duration_ns: s.end_ns - s.start_ns,
            error: s.error,
            input_tokens: s.input_tokens.unwrap_or(0),
            output_tokens: s.output_tokens.unwrap_or(0),
            cache_read_tokens: s.cache_read_tokens.unwrap_or(0),
            cost_usd: s.cost_usd,
        })
        .collect();
    out.sort_by(|a, b| (a.start_ns, &a.series).cmp(&(b.start_ns, &b.series)));
    out
}

/// What a rollup update adds: sums (negative where calls left a series) per row. Hashed: every
/// call adds to six rows, and ordered keys of six strings made the comparisons a fifth of SQLite's
/// ingest time.
pub type Delta = HashMap<(Bucket, Series), Sums>;

/// Adds `sign` times the rollup rows of `calls` to `delta`.
pub fn add_calls(delta: &mut Delta, calls: &[Call], sign: i64) {
    for c in calls {
        let id = c.series.id();
        let per_value = |value: &Option<String>| Series {
            value: value.clone().unwrap_or_default(),
            ..Series::default()
        };
        let rows = [
            (Dim::Calls, c.series.clone()),
            (Dim::User, per_value(&c.user)),
            (Dim::Session, per_value(&c.session)),
        ];
        for (dim, series) in rows {
            for &width_ns in dim.widths() {
                let bucket = Bucket {
                    dim,
                    width_ns,
                    start_ns: c.start_ns.div_euclid(width_ns) * width_ns,
                };
                let sums = delta.entry((bucket, series.clone())).or_default();
                sums.add_call(c, sign);
                if dim != Dim::Calls {
                    sums.parts.add_call(id, c, sign);
                }
            }
        }
    }
}

/// Adds to `delta` the rollup change of one trace whose spans and call owners go from `before`
/// to `after`.
pub fn add_change(
    delta: &mut Delta,
    trace_id: &str,
    before: (&[SpanBrief], &Owners),
    after: (&[SpanBrief], &Owners),
) {
    add_calls(delta, &calls(trace_id, before.0, before.1), -1);
    add_calls(delta, &calls(trace_id, after.0, after.1), 1);
}

/// Drops the rows of `delta` that net to nothing.
pub fn settle(delta: &mut Delta) {
    delta.retain(|_, s| !s.is_zero());
}

/// How a summary is answered: raw rows for `raw` ranges, rollups of the given width for the
/// `rollup` ranges; together they cover the query's range exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub raw: Vec<(i64, i64)>,
    /// `(width, from, to)`, bucket starts in `[from, to)`.
    pub rollup: Vec<(i64, i64, i64)>,
}

/// The plan for `q`, or `None` when rollups cannot answer it (a bucket not a multiple of an
/// hour, or no whole hour in range).
pub fn plan(q: &SummaryQuery) -> Option<Plan> {
    let f = &q.filter;
    let hourly = q.bucket_ns.is_none_or(|b| b % HOUR_NS == 0);
    let daily = q.bucket_ns.is_none_or(|b| b % DAY_NS == 0);
    if !hourly {
        return None;
    }
    let from = f.from_ns.unwrap_or(i64::MIN);
    let to = f.to_ns.unwrap_or(i64::MAX);
    let ceil = |t: i64, w: i64| {
        if t == i64::MIN {
            t
        } else {
            t.div_euclid(w) * w + if t.rem_euclid(w) == 0 { 0 } else { w }
        }
    };
    let floor = |t: i64, w: i64| {
        if t == i64::MAX {
            t
        } else {
            t.div_euclid(w) * w
        }
    };
    let (h0, h1) = (ceil(from, HOUR_NS), floor(to, HOUR_NS));
    if h0 >= h1 {
        return None;
    }
    let mut plan = Plan {
        raw: [(from, h0), (h1, to)]
            .into_iter()
            .filter(|(a, b)| a < b)
            .collect(),
        rollup: Vec::new(),
    };
    let (d0, d1) = (ceil(h0, DAY_NS), floor(h1, DAY_NS));
    let weekly = Dim::for_group(q.group_by).widths().contains(&WEEK_NS)
        && q.bucket_ns.is_none_or(|b| b % WEEK_NS == 0);
    let (w0, w1) = (ceil(d0, WEEK_NS), floor(d1, WEEK_NS));
    if daily && weekly && w0 < w1 {
        plan.rollup.extend(
            [
                (HOUR_NS, h0, d0),
                (DAY_NS, d0, w0),
                (WEEK_NS, w0, w1),
                (DAY_NS, w1, d1),
                (HOUR_NS, d1, h1),
            ]
            .into_iter()
            .filter(|(_, a, b)| a < b),
        );
    } else if daily && d0 < d1 {
        plan.rollup.extend(
            [(HOUR_NS, h0, d0), (DAY_NS, d0, d1), (HOUR_NS, d1, h1)]
                .into_iter()
                .filter(|(_, a, b)| a < b),
        );
    } else {
        plan.rollup.push((HOUR_NS, h0, h1));
    }
    Some(plan)
}

/// Whether a summary over rollups sums the parts of user or session rows, those of the series
/// its filter accepts, rather than their totals: a user or session summary with a service,
/// provider or model filter.
pub fn sums_parts(q: &SummaryQuery) -> bool {
    let f = &q.filter;
    Dim::for_group(q.group_by) != Dim::Calls
        && (f.service.is_some() || f.provider.is_some() || f.model.is_some())
}

/// Sums per (group, bucket) from raw calls and rollup rows, for one summary. Groups are looked
/// up by borrowed text (`""` for calls without a value, as the rollups store it), so a row read
/// straight from a store allocates nothing unless its group is new.
pub struct Combined {
    bucket_ns: Option<i64>,
    groups: HashMap<Option<i64>, HashMap<String, Sums, FixedState>, FixedState>,
}

impl Combined {
    pub fn new(q: &SummaryQuery) -> Self {
        Self {
            bucket_ns: q.bucket_ns.filter(|b| *b > 0),
            groups: HashMap::default(),
        }
    }

    /// Changes the sums of `key`'s group in the bucket of `start_ns` (one lookup when the group
    /// exists).
    fn update(&mut self, key: &str, start_ns: i64, change: impl FnOnce(&mut Sums)) {
        let bucket = self.bucket_ns.map(|b| start_ns.div_euclid(b) * b);
        let groups = self.groups.entry(bucket).or_default();
        match groups.get_mut(key) {
            Some(sums) => change(sums),
            None => {
                let mut sums = Sums::default();
                change(&mut sums);
                groups.insert(key.to_owned(), sums);
            }
        }
    }

    /// A call from raw rows, keyed as the summary groups.
    pub fn add_raw(&mut self, call: &CallRow) {
        let as_call = Call {
            start_ns: call.start_ns,
            duration_ns: call.duration_ns,
            error: call.error,
            input_tokens: call.input_tokens,
            output_tokens: call.output_tokens,
            cache_read_tokens: call.cache_read_tokens,
            cost_usd: call.cost_usd,
            ..Call::default()
        };
        let key = call.key.as_deref().unwrap_or("");
        self.update(key, call.start_ns, |sums| sums.add_call(&as_call, 1));
    }

    /// Sums already keyed by the summary's group (a store that groups in SQL, or a user or
    /// session rollup row: its value).
    pub fn add_group(&mut self, key: &str, bucket_start_ns: i64, sums: &Sums) {
        self.update(key, bucket_start_ns, |group| group.merge(sums, 1));
    }

    /// Like [`Combined::add_group`], with the histogram as stored ([`Hist::encode`]) beside
    /// sums that have none.
    pub fn add_encoded(&mut self, key: &str, bucket_start_ns: i64, sums: &Sums, hist: &[u8]) {
        self.update(key, bucket_start_ns, |group| {
            group.merge(sums, 1);
            group.hist.merge_encoded(hist);
        });
    }

    /// A user or session rollup row's parts, of the series `wanted` accepts (a filtered user or
    /// session summary; see [`sums_parts`]).
    pub fn add_parts(
        &mut self,
        value: &str,
        bucket_start_ns: i64,
        parts: &[u8],
        wanted: impl Fn(i64) -> bool,
    ) {
        let sums = Parts::sum_encoded(parts, wanted);
        if sums.requests != 0 {
            self.add_group(value, bucket_start_ns, &sums);
        }
    }

    pub fn finish(self) -> Vec<SummaryGroup> {
        let mut out: Vec<SummaryGroup> = self
            .groups
            .into_iter()
            .flat_map(|(bucket, groups)| {
                groups
                    .into_iter()
                    .filter(|(_, s)| s.requests > 0)
                    .map(move |(key, sums)| {
                        sums.into_group((!key.is_empty()).then_some(key), bucket)
                    })
            })
            .collect();
        sort_groups(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Filter;

    #[test]
    fn histograms_round_trip_and_give_quantiles_within_ten_percent() {
        let mut h = Hist::default();
        for ms in 1..=1000 {
            h.add_ns(ms * 1_000_000, 1);
        }
        assert_eq!(Hist::decode(&h.encode()), h);
        let l = h.latency();
        for (got, want) in [(l.p50_ms, 500.0), (l.p95_ms, 950.0), (l.p99_ms, 990.0)] {
            assert!(got >= want && got <= want * 1.1, "{got} vs {want}");
        }
        let mut none = h.clone();
        none.merge(&h, -1);
        assert!(none.is_empty());
        assert_eq!(Hist::decode(&[7, 0x80]), Hist::default(), "truncated");
    }

    fn brief(id: &str, start: i64) -> SpanBrief {
        SpanBrief {
            span_id: id.into(),
            start_ns: start,
            end_ns: start + 2_000_000,
            ..Default::default()
        }
    }

    fn call(id: &str, response: &str, input: Option<i64>) -> SpanBrief {
        SpanBrief {
            is_model_call: true,
            response_id: Some(response.into()),
            input_tokens: input,
            request_model: Some("gpt-4o".into()),
            ..brief(id, 10 * HOUR_NS + 5)
        }
    }

    #[test]
    fn a_root_arriving_last_moves_its_calls_to_its_user_and_twins_count_once() {
        let children = [call("b", "r1", None), call("c", "r1", Some(7))];
        let root = SpanBrief {
            is_root: true,
            user_id: Some("ada".into()),
            ..brief("a", 10 * HOUR_NS)
        };
        let none = Owners::default();
        let delta = |before: &[SpanBrief], after: &[SpanBrief]| {
            let mut d = Delta::new();
            add_change(&mut d, "t", (before, &none), (after, &none));
            settle(&mut d);
            d
        };
        let first = delta(&[], &children);
        let calls_row = |d: &Delta, dim, value: &str| {
            d.iter()
                .find(|((b, s), _)| b.dim == dim && b.width_ns == HOUR_NS && s.value == value)
                .map(|(_, sums)| (sums.requests, sums.input_tokens))
        };
        assert_eq!(calls_row(&first, Dim::Calls, ""), Some((1, 7)), "one call");
        assert_eq!(calls_row(&first, Dim::User, ""), Some((1, 7)));
        let all: Vec<SpanBrief> = children.iter().cloned().chain([root]).collect();
        let second = delta(&children, &all);
        assert_eq!(calls_row(&second, Dim::Calls, ""), None, "unchanged");
        assert_eq!(calls_row(&second, Dim::User, ""), Some((-1, -7)));
        assert_eq!(calls_row(&second, Dim::User, "ada"), Some((1, 7)));
        assert!(delta(&all, &all).is_empty(), "a retry changes nothing");
    }

    #[test]
    fn a_call_in_two_traces_counts_in_the_one_with_its_best_span() {
        let (partial, full) = (call("p", "r1", None), call("f", "r1", Some(9)));
        let owners = Owners::of([("t1", &partial), ("t2", &full)]);
        assert!(calls("t1", std::slice::from_ref(&partial), &owners).is_empty());
        assert_eq!(calls("t2", std::slice::from_ref(&full), &owners).len(), 1);
        // Before the full span arrived, t1 counted the call; after, t2 does and t1 gives it up.
        let before = Owners::of([("t1", &partial)]);
        let mut d = Delta::new();
        add_change(
            &mut d,
            "t1",
            (std::slice::from_ref(&partial), &before),
            (std::slice::from_ref(&partial), &owners),
        );
        add_change(
            &mut d,
            "t2",
            (&[], &before),
            (std::slice::from_ref(&full), &owners),
        );
        settle(&mut d);
        let calls_rows: Vec<_> = d
            .iter()
            .filter(|((b, _), _)| b.dim == Dim::Calls && b.width_ns == HOUR_NS)
            .map(|(_, s)| (s.requests, s.input_tokens))
            .collect();
        assert_eq!(
            calls_rows,
            vec![(0, 9)],
            "one call, now with its full usage"
        );
    }

    #[test]
    fn plans_cover_the_range_once_with_raw_edges() {
        let q = |from: Option<i64>, to: Option<i64>, bucket: Option<i64>| SummaryQuery {
            filter: Filter {
                from_ns: from,
                to_ns: to,
                ..Default::default()
            },
            group_by: GroupBy::Model,
            bucket_ns: bucket,
        };
        let (from, to) = (3 * DAY_NS - 90 * 60_000_000_000, 5 * DAY_NS + 7);
        assert_eq!(
            plan(&q(Some(from), Some(to), None)),
            Some(Plan {
                raw: vec![(from, 3 * DAY_NS - HOUR_NS), (5 * DAY_NS, to)],
                rollup: vec![
                    (HOUR_NS, 3 * DAY_NS - HOUR_NS, 3 * DAY_NS),
                    (DAY_NS, 3 * DAY_NS, 5 * DAY_NS)
                ],
            })
        );
        assert_eq!(
            plan(&q(Some(from), Some(to), Some(HOUR_NS))).map(|p| p.rollup),
            Some(vec![(HOUR_NS, 3 * DAY_NS - HOUR_NS, 5 * DAY_NS)])
        );
        assert_eq!(plan(&q(Some(from), Some(to), Some(60_000_000_000))), None);
        assert_eq!(
            plan(&q(Some(7), Some(HOUR_NS + 6), None)),
            None,
            "no whole hour"
        );
        assert_eq!(
            plan(&q(None, None, None)),
            Some(Plan {
                raw: vec![],
                rollup: vec![(DAY_NS, i64::MIN, i64::MAX)]
            })
        );
        let mut user = q(Some(from), Some(to), None);
        user.group_by = GroupBy::User;
        assert!(plan(&user).is_some());
        assert!(!sums_parts(&user));
        // A month of users: whole weeks from their weekly rows, the days around them daily.
        let (from, to) = (DAY_NS + 5, 40 * DAY_NS + 7);
        user.filter.from_ns = Some(from);
        user.filter.to_ns = Some(to);
        assert_eq!(
            plan(&user),
            Some(Plan {
                raw: vec![(from, DAY_NS + HOUR_NS), (40 * DAY_NS, to)],
                rollup: vec![
                    (HOUR_NS, DAY_NS + HOUR_NS, 2 * DAY_NS),
                    (DAY_NS, 2 * DAY_NS, 7 * DAY_NS),
                    (WEEK_NS, 7 * DAY_NS, 35 * DAY_NS),
                    (DAY_NS, 35 * DAY_NS, 40 * DAY_NS),
                ],
            })
        );
        user.filter.model = Some("gpt-4o".into());
        assert!(plan(&user).is_some(), "from the parts of user rows");
        assert!(sums_parts(&user));
    }

    #[test]
    fn parts_keep_each_series_and_a_filter_sums_only_its_own() {
        let call = |model: &str, user: &str, ms: i64, cost: Option<f64>| Call {
            series: Series {
                service: "svc".into(),
                provider: "openai".into(),
                model: model.into(),
                response_model: model.into(),
                operation: "chat".into(),
                value: String::new(),
            },
            user: Some(user.into()),
            start_ns: 3 * HOUR_NS + 1,
            duration_ns: ms * 1_000_000,
            input_tokens: 100,
            output_tokens: 7,
            cost_usd: cost,
            ..Call::default()
        };
        let calls = [
            call("gpt-4o", "ada", 40, Some(0.25)),
            call("gpt-4o", "ada", 900, Some(0.5)),
            call("o3-mini", "ada", 3, None),
            call("gpt-4o", "bob", 12, Some(1.0)),
        ];
        let mut delta = Delta::new();
        add_calls(&mut delta, &calls, 1);
        let row = |user: &str| {
            let key = delta
                .keys()
                .find(|(b, s)| b.dim == Dim::User && b.width_ns == HOUR_NS && s.value == user)
                .expect("user row");
            delta[key].clone()
        };
        let ada = row("ada");
        assert_eq!(ada.requests, 3);
        let bytes = ada.parts.encode();
        assert_eq!(Parts::decode(&bytes), ada.parts, "round trip");
        let gpt_4o = calls[0].series.id();
        let only = Parts::sum_encoded(&bytes, |id| id == gpt_4o);
        assert_eq!(
            (only.requests, only.input_tokens, only.priced, only.cost_usd),
            (2, 200, 2, 0.75)
        );
        assert_eq!(
            only.hist.latency().p99_ms,
            Hist::from_counts([(hist_index(900.0), 1)]).latency().p99_ms
        );
        let none = Parts::sum_encoded(&bytes, |_| false);
        assert!(none.is_zero());
        assert_eq!(
            Parts::decode(&bytes[..bytes.len() - 1]).0.len(),
            1,
            "a cut tail is dropped"
        );
        // Taking the calls away again leaves nothing, parts included.
        add_calls(&mut delta, &calls, -1);
        settle(&mut delta);
        assert!(delta.is_empty());
    }
}
