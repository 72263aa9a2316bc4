//! Adaptive baselines: an exponentially weighted mean and variance, and a sliding window of
//! outcomes for error rates.

/// EWMA mean and variance. Until `1/n` drops below `alpha` every sample weighs equally, so the
/// warm-up estimate is the plain sample mean and variance.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ewma {
    pub n: u64,
    pub mean: f64,
    pub var: f64,
}

/// Smallest standard deviation assumed, so a perfectly constant series does not turn every
/// small change into an infinite score.
const MIN_STD: f64 = 0.05;

impl Ewma {
    pub fn std(&self) -> f64 {
        self.var.sqrt().max(MIN_STD)
    }

    /// How many standard deviations `x` is above the mean.
    pub fn score(&self, x: f64) -> f64 {
        (x - self.mean) / self.std()
    }

    /// Adds a sample. Once warmed up, samples are clamped to `mean ± limit·std` first, so one
    /// spike cannot drag the baseline after it.
    pub fn update(&mut self, x: f64, alpha: f64, warmed_up: bool, limit: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        if self.n == 1 {
            self.mean = x;
            self.var = 0.0;
            return;
        }
        let x = if warmed_up {
            let s = self.std() * limit;
            x.clamp(self.mean - s, self.mean + s)
        } else {
            x
        };
        let a = alpha.max(1.0 / self.n as f64);
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
    }
}

/// The last `len` outcomes (true = error), as bits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    bits: u64,
    filled: u32,
}

impl Window {
    pub fn push(&mut self, error: bool, len: u32) {
        let mask = if len >= 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        self.bits = ((self.bits << 1) | u64::from(error)) & mask;
        self.filled = (self.filled + 1).min(len);
    }

    pub fn errors(&self) -> u32 {
        self.bits.count_ones()
    }

    pub fn filled(&self) -> u32 {
        self.filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_estimates_are_sample_moments() {
        let mut e = Ewma::default();
        for x in [1.0, 2.0, 3.0, 4.0] {
            e.update(x, 0.01, false, 3.0);
        }
        assert!((e.mean - 2.5).abs() < 1e-9);
        assert!(e.var > 0.5 && e.var < 1.5, "{}", e.var);
    }

    #[test]
    fn a_spike_does_not_drag_a_warmed_baseline() {
        let mut e = Ewma::default();
        for i in 0..200 {
            e.update(if i % 2 == 0 { 9.0 } else { 11.0 }, 0.05, i > 50, 3.0);
        }
        let before = e.mean;
        e.update(1000.0, 0.05, true, 3.0);
        assert!((e.mean - before).abs() < 0.2, "{} -> {}", before, e.mean);
        assert!(e.score(20.0) > 5.0);
    }

    #[test]
    fn the_window_keeps_the_last_outcomes() {
        let mut w = Window::default();
        for i in 0..100 {
            w.push(i >= 95, 10);
        }
        assert_eq!((w.errors(), w.filled()), (5, 10));
    }
}
