//! Per-series state and detection: latency, cost per call and output tokens against log-scale
//! EWMA baselines; error rate over a sliding window against a slow baseline rate; request volume
//! per time bucket against an EWMA of past buckets.

use std::collections::HashMap;

use super::baseline::{Ewma, Window};
use super::config::AnomalyConfig;

/// What an anomaly is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Latency,
    Cost,
    OutputTokens,
    ErrorRate,
    VolumeSpike,
    VolumeDrop,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Latency,
        Kind::Cost,
        Kind::OutputTokens,
        Kind::ErrorRate,
        Kind::VolumeSpike,
        Kind::VolumeDrop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "latency",
            Kind::Cost => "cost",
            Kind::OutputTokens => "output_tokens",
            Kind::ErrorRate => "error_rate",
            Kind::VolumeSpike => "volume_spike",
            Kind::VolumeDrop => "volume_drop",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The identity of a series.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub project: String,
    pub service: String,
    pub provider: String,
    pub model: String,
    pub operation: String,
}

/// One model call as the detector sees it.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Span start, Unix ns: the detector's clock.
    pub time_ns: i64,
    pub latency_ms: f64,
    pub cost_usd: Option<f64>,
    pub output_tokens: Option<i64>,
    pub error: bool,
}

/// A detected anomaly, in the units of its kind (ms, USD, tokens, rate, calls per bucket).
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub kind: Kind,
    pub score: f64,
    pub value: f64,
    pub baseline: f64,
    /// Span time of the call or the end of the volume bucket, Unix ns.
    pub time_ns: i64,
}

#[derive(Debug, Default)]
struct Series {
    last_seen: u64,
    latency: Ewma,
    cost: Ewma,
    tokens: Ewma,
    calls: u64,
    error_rate: Ewma,
    errors: Window,
    /// Current volume bucket index (span time / width) and its count.
    bucket: Option<i64>,
    bucket_count: u64,
    volume: Ewma,
    /// Per kind: reports are suppressed until this span time (Unix ns).
    quiet_until: [i64; 6],
}

pub struct Detector {
    config: AnomalyConfig,
    alpha: f64,
    /// Slower baseline for error rates: an incident should not become normal within a window.
    error_alpha: f64,
    series: HashMap<SeriesKey, Series>,
    clock: u64,
    /// The volume bucket every series was last brought up to.
    swept_bucket: Option<i64>,
    pub evicted: u64,
}

/// Samples clamp to this many standard deviations when updating a warmed baseline.
const CLAMP: f64 = 3.0;

impl Detector {
    pub fn new(config: AnomalyConfig) -> Self {
        let alpha = config.alpha();
        Self {
            error_alpha: alpha / 4.0,
            alpha,
            config,
            series: HashMap::new(),
            clock: 0,
            swept_bucket: None,
            evicted: 0,
        }
    }

    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    fn bucket_ns(&self) -> i64 {
        i64::try_from(self.config.volume_bucket.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Feeds one call; returns what it revealed (volume findings included, for the buckets it
    /// closed).
    pub fn observe(&mut self, key: &SeriesKey, obs: Observation) -> Vec<Detection> {
        self.clock += 1;
        if !self.series.contains_key(key) && self.series.len() >= self.config.max_series {
            self.evict();
        }
        let clock = self.clock;
        let (cfg, alpha, error_alpha, width) =
            (&self.config, self.alpha, self.error_alpha, self.bucket_ns());
        let s = self.series.entry(key.clone()).or_default();
        s.last_seen = clock;
        let mut found = Vec::new();
        let warmed = s.calls >= u64::from(cfg.warmup);

        let measures = [
            (Kind::Latency, Some(obs.latency_ms.max(1e-3))),
            (Kind::Cost, obs.cost_usd.filter(|c| *c > 0.0)),
            (
                Kind::OutputTokens,
                obs.output_tokens.filter(|t| *t > 0).map(|t| t as f64),
            ),
        ];
        for (kind, value) in measures {
            let Some(value) = value else { continue };
            let x = value.ln();
            let baseline = match kind {
                Kind::Latency => &mut s.latency,
                Kind::Cost => &mut s.cost,
                _ => &mut s.tokens,
            };
            let ready = baseline.n >= u64::from(cfg.warmup);
            if ready {
                let score = baseline.score(x);
                let ratio = (x - baseline.mean).exp();
                let min_ratio = if kind == Kind::Latency {
                    cfg.min_ratio
                } else {
                    cfg.min_usage_ratio
                };
                if score >= cfg.sensitivity
                    && ratio >= min_ratio
                    && let Some(d) = report(
                        &mut s.quiet_until,
                        cfg,
                        kind,
                        score,
                        value,
                        baseline.mean.exp(),
                        obs.time_ns,
                    )
                {
                    found.push(d);
                }
            }
            baseline.update(x, alpha, ready, CLAMP);
        }

        // Error rate: the window against the slow baseline rate.
        s.calls += 1;
        s.errors.push(obs.error, cfg.error_window);
        if warmed && s.errors.filled() >= cfg.error_window {
            let n = f64::from(cfg.error_window);
            let k = f64::from(s.errors.errors());
            let p = s.error_rate.mean.clamp(0.001, 0.999);
            let score = (k - n * p) / (n * p * (1.0 - p)).sqrt();
            if k / n >= cfg.min_error_rate
                && score >= cfg.sensitivity
                && let Some(d) = report(
                    &mut s.quiet_until,
                    cfg,
                    Kind::ErrorRate,
                    score,
                    k / n,
                    p,
                    obs.time_ns,
                )
            {
                found.push(d);
            }
        }
        s.error_rate
            .update(f64::from(u8::from(obs.error)), error_alpha, false, CLAMP);

        // Volume: count into the call's bucket; a later bucket closes the current one.
        let bucket = obs.time_ns.div_euclid(width);
        match s.bucket {
            None => s.bucket = Some(bucket),
            Some(current) if bucket > current => {
                found.extend(close_buckets(s, cfg, alpha, width, bucket));
            }
            _ => {}
        }
        s.bucket_count += 1;
        found
    }

    /// Brings every series up to `now_ns`, closing buckets that saw no calls: a series that
    /// stopped altogether is a volume drop. Runs at most once per bucket.
    pub fn sweep(&mut self, now_ns: i64) -> Vec<(SeriesKey, Detection)> {
        let width = self.bucket_ns();
        let bucket = now_ns.div_euclid(width);
        if self.swept_bucket.is_some_and(|b| b >= bucket) {
            return Vec::new();
        }
        self.swept_bucket = Some(bucket);
        let (cfg, alpha) = (&self.config, self.alpha);
        let mut found = Vec::new();
        for (key, s) in self.series.iter_mut() {
            // Only buckets entirely in the past: the current one may still fill.
            if s.bucket.is_some_and(|b| b + 1 < bucket) {
                for d in close_buckets(s, cfg, alpha, width, bucket) {
                    found.push((key.clone(), d));
                }
            }
        }
        found
    }

    /// Drops the least recently seen 1% of series (at least one).
    fn evict(&mut self) {
        let n = (self.series.len() / 100).max(1);
        let mut seen: Vec<u64> = self.series.values().map(|s| s.last_seen).collect();
        let cut_index = n.min(seen.len()) - 1;
        let (_, cut, _) = seen.select_nth_unstable(cut_index);
        let cut = *cut;
        let before = self.series.len();
        self.series.retain(|_, s| s.last_seen > cut);
        self.evicted += (before - self.series.len()) as u64;
    }
}

/// Closes the current bucket and every empty one before `next`, judging each against the
/// baseline of the ones before it.
fn close_buckets(
    s: &mut Series,
    cfg: &AnomalyConfig,
    alpha: f64,
    width: i64,
    next: i64,
) -> Vec<Detection> {
    let mut found = Vec::new();
    let Some(mut current) = s.bucket else {
        return found;
    };
    // A long silence is judged once, as one empty bucket; the rest only teach the baseline.
    let gap = (next - current).min(64);
    for step in 0..gap {
        let count = if step == 0 {
            s.bucket_count as f64
        } else {
            0.0
        };
        let ready = s.volume.n >= u64::from(cfg.volume_warmup);
        if ready && step <= 1 {
            let mean = s.volume.mean.max(1.0);
            let spread = s.volume.var.max(mean).sqrt();
            let score = (count - mean) / spread;
            let end = (current + 1).saturating_mul(width);
            if score >= cfg.sensitivity && count >= mean * cfg.min_ratio {
                found.extend(report(
                    &mut s.quiet_until,
                    cfg,
                    Kind::VolumeSpike,
                    score,
                    count,
                    mean,
                    end,
                ));
            } else if -score >= cfg.sensitivity && count <= mean / cfg.min_ratio {
                found.extend(report(
                    &mut s.quiet_until,
                    cfg,
                    Kind::VolumeDrop,
                    -score,
                    count,
                    mean,
                    end,
                ));
            }
        }
        s.volume.update(count, alpha, ready, CLAMP);
        current += 1;
    }
    s.bucket = Some(next);
    s.bucket_count = 0;
    found
}

/// A detection, unless the kind is in its cooldown; either way the cooldown restarts, so a
/// sustained incident is reported once.
fn report(
    quiet_until: &mut [i64; 6],
    cfg: &AnomalyConfig,
    kind: Kind,
    score: f64,
    value: f64,
    baseline: f64,
    time_ns: i64,
) -> Option<Detection> {
    let cooldown = i64::try_from(cfg.cooldown.as_nanos()).unwrap_or(i64::MAX);
    let quiet = time_ns < quiet_until[kind.index()];
    quiet_until[kind.index()] = quiet_until[kind.index()].max(time_ns.saturating_add(cooldown));
    (!quiet).then_some(Detection {
        kind,
        score,
        value,
        baseline,
        time_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(model: &str) -> SeriesKey {
        SeriesKey {
            project: "p".into(),
            service: "s".into(),
            provider: "openai".into(),
            model: model.into(),
            operation: "chat".into(),
        }
    }

    fn obs(i: i64, latency_ms: f64) -> Observation {
        Observation {
            time_ns: i * 100_000_000,
            latency_ms,
            cost_usd: None,
            output_tokens: None,
            error: false,
        }
    }

    #[test]
    fn a_sustained_incident_is_one_anomaly() {
        let mut d = Detector::new(AnomalyConfig::default());
        let k = key("m");
        let mut found = Vec::new();
        for i in 0..2_000 {
            let noise = 1.0 + 0.1 * ((i * 7919 % 13) as f64 / 13.0 - 0.5);
            let latency = if (1_000..1_300).contains(&i) {
                4_000.0
            } else {
                800.0
            } * noise;
            found.extend(d.observe(&k, obs(i, latency)));
        }
        let latency: Vec<_> = found.iter().filter(|d| d.kind == Kind::Latency).collect();
        assert_eq!(latency.len(), 1, "{found:?}");
        assert!((latency[0].baseline - 800.0).abs() < 50.0);
        assert_eq!(latency[0].time_ns, 1_000 * 100_000_000);
    }

    #[test]
    fn error_bursts_and_silences_are_found() {
        let mut d = Detector::new(AnomalyConfig::default());
        let k = key("m");
        let mut found = Vec::new();
        // 10 calls a second for 20 minutes, 1% errors; then a burst of errors.
        for i in 0..12_000 {
            let mut o = obs(i, 800.0);
            o.error = i % 100 == 0 || (11_000..11_030).contains(&i);
            found.extend(d.observe(&k, o));
        }
        let kinds: Vec<_> = found.iter().map(|d| d.kind).collect();
        assert_eq!(kinds, vec![Kind::ErrorRate]);
        // Then the series goes silent: the next sweep a few minutes later reports a drop.
        let later = 12_000 * 100_000_000 + 5 * 60 * 1_000_000_000;
        let drops = d.sweep(later);
        assert_eq!(drops.len(), 1);
        assert_eq!(drops[0].1.kind, Kind::VolumeDrop);
        assert_eq!(drops[0].1.value, 0.0);
        assert!(d.sweep(later + 1).is_empty(), "once per bucket");
    }

    #[test]
    fn series_are_capped_and_the_least_recent_evicted() {
        let mut d = Detector::new(AnomalyConfig {
            max_series: 100,
            ..Default::default()
        });
        for i in 0..250 {
            d.observe(&key(&format!("m{i}")), obs(i, 800.0));
        }
        assert!(d.series_count() <= 100);
        assert!(d.evicted >= 150);
        assert!(d.series.contains_key(&key("m249")));
        assert!(!d.series.contains_key(&key("m0")));
    }
}
