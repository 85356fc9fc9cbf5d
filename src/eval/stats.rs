//! Means and percentile-bootstrap confidence intervals of per-prompt scores.
//!
//! Missing values are absent, never zero: a prompt whose judgment failed (no image, an
//! unusable reply, no checklist item judged) has no score, and callers drop it
//! (`scores.iter().flatten()`) before calling these functions, so it neither lowers a mean
//! nor narrows an interval. `n` in an [`Interval`] is the number of values that were
//! actually judged. Non-finite values (NaN, infinities) are ignored the same way.

use serde::{Deserialize, Serialize};

/// A confidence interval around a sample mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The lower bound.
    pub low: f64,
    /// The upper bound.
    pub high: f64,
    /// The sample mean.
    pub mean: f64,
    /// How many values the sample had.
    pub n: usize,
}

impl Interval {
    /// `high - low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }

    /// Whether `x` lies within the interval (bounds included).
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// The mean of the finite values of `samples`; `None` when there are none.
pub fn mean(samples: &[f64]) -> Option<f64> {
    let (sum, n) = samples
        .iter()
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// A percentile-bootstrap confidence interval of the mean of `samples`.
///
/// Draws `resamples` samples of the same size with replacement (a seeded splitmix64
/// generator, so the same inputs always give the same interval), takes each one's mean,
/// and returns the `(1 - level) / 2` and `(1 + level) / 2` quantiles of those means
/// (linearly interpolated). `level` is e.g. `0.95`.
///
/// `None` for an empty sample (after dropping non-finite values), a `level` outside
/// `(0, 1)` or zero `resamples`. A sample of one value, or of equal values, gives a
/// zero-width interval at that value. Cost: `resamples × n` draws.
pub fn bootstrap_ci(samples: &[f64], level: f64, resamples: usize, seed: u64) -> Option<Interval> {
    let values: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    let n = values.len();
    if n == 0 || resamples == 0 || !(level > 0.0 && level < 1.0) {
        return None;
    }
    let sample_mean = mean(&values)?;
    let mut rng = SplitMix64::new(seed);
    let mut means: Vec<f64> = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        let mut sum = 0.0;
        for _ in 0..n {
            // below(n) < n, so the index is always in bounds.
            sum += values.get(rng.below(n)).copied().unwrap_or(sample_mean);
        }
        means.push(sum / n as f64);
    }
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Some(Interval {
        low: quantile(&means, tail),
        high: quantile(&means, 1.0 - tail),
        mean: sample_mean,
        n,
    })
}

/// The `q`-quantile of sorted, non-empty `values`, linearly interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let last = sorted.len().saturating_sub(1);
    let pos = q.clamp(0.0, 1.0) * last as f64;
    let below = pos.floor() as usize;
    let above = pos.ceil() as usize;
    let (Some(&lo), Some(&hi)) = (sorted.get(below), sorted.get(above)) else {
        return f64::NAN;
    };
    lo + (hi - lo) * (pos - below as f64)
}

/// splitmix64 (Steele, Lea and Flood, 2014): a tiny, well-mixed generator that is plenty
/// for resampling indices.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`), by Lemire's multiply-and-shift (its bias,
    /// below `n / 2^64`, is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` values uniform in `[0, 1)`, the same for every call.
    fn uniform(n: usize) -> Vec<f64> {
        let mut rng = SplitMix64::new(7);
        (0..n)
            .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
            .collect()
    }

    #[test]
    fn mean_skips_nothing_but_non_finite_values() {
        assert_eq!(mean(&[]), None);
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(mean(&[1.0, f64::NAN, 3.0]), Some(2.0));
        assert_eq!(mean(&[f64::INFINITY]), None);
    }

    #[test]
    fn interval_of_a_known_sample_contains_its_mean() {
        let sample = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0, 0.25, 0.75];
        let ci = bootstrap_ci(&sample, 0.95, 2000, 1).unwrap();
        assert_eq!(ci.n, 10);
        assert!((ci.mean - 0.5).abs() < 1e-12);
        assert!(ci.contains(ci.mean), "{ci:?}");
        assert!(ci.low > 0.0 && ci.high < 1.0, "{ci:?}");
        assert!(ci.width() > 0.1, "{ci:?}");
    }

    #[test]
    fn interval_narrows_with_more_samples() {
        let small = bootstrap_ci(&uniform(20), 0.95, 2000, 3).unwrap();
        let large = bootstrap_ci(&uniform(500), 0.95, 2000, 3).unwrap();
        // The width shrinks like 1/sqrt(n): about 0.25 and 0.05 for a uniform sample.
        assert!(
            large.width() < small.width() / 3.0,
            "{small:?} vs {large:?}"
        );
        assert!(large.contains(0.5), "{large:?}");
    }

    #[test]
    fn higher_level_gives_a_wider_interval() {
        let sample = uniform(50);
        let narrow = bootstrap_ci(&sample, 0.5, 2000, 9).unwrap();
        let wide = bootstrap_ci(&sample, 0.99, 2000, 9).unwrap();
        assert!(wide.width() > narrow.width(), "{narrow:?} vs {wide:?}");
    }

    #[test]
    fn constant_sample_gives_zero_width() {
        let ci = bootstrap_ci(&[0.75; 40], 0.95, 500, 42).unwrap();
        assert_eq!((ci.low, ci.high, ci.mean, ci.n), (0.75, 0.75, 0.75, 40));
        let one = bootstrap_ci(&[0.3], 0.95, 100, 1).unwrap();
        assert_eq!((one.low, one.high), (0.3, 0.3));
    }

    #[test]
    fn deterministic_for_a_seed() {
        let sample = uniform(30);
        let a = bootstrap_ci(&sample, 0.9, 1000, 11).unwrap();
        let b = bootstrap_ci(&sample, 0.9, 1000, 11).unwrap();
        assert_eq!(a, b);
        let c = bootstrap_ci(&sample, 0.9, 1000, 12).unwrap();
        assert_ne!((a.low, a.high), (c.low, c.high));
    }

    #[test]
    fn degenerate_inputs_give_none_not_a_panic() {
        assert_eq!(bootstrap_ci(&[], 0.95, 100, 1), None);
        assert_eq!(bootstrap_ci(&[f64::NAN], 0.95, 100, 1), None);
        assert_eq!(bootstrap_ci(&[1.0, 2.0], 0.95, 0, 1), None);
        assert_eq!(bootstrap_ci(&[1.0, 2.0], 1.0, 100, 1), None);
        assert_eq!(bootstrap_ci(&[1.0, 2.0], 0.0, 100, 1), None);
        assert_eq!(bootstrap_ci(&[1.0, 2.0], f64::NAN, 100, 1), None);
        // Missing values are dropped, not counted as zero.
        let ci = bootstrap_ci(&[1.0, f64::NAN, 1.0], 0.95, 100, 1).unwrap();
        assert_eq!((ci.mean, ci.n, ci.low), (1.0, 2, 1.0));
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = SplitMix64::new(0);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let i = rng.below(7);
            assert!(i < 7);
            seen[i] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
