//! Running statistics for adaptive thresholds.

use super::{positive, window_samples, DspError};
use crate::time::SampleRate;

/// Exponentially weighted running mean and variance.
///
/// Each sample has weight `alpha = 1 - exp(-1 / (time_constant_s * rate))`,
/// so the memory decays by `1/e` per time constant. The first sample sets the
/// mean (variance 0), avoiding a slow climb from zero.
#[derive(Debug, Clone)]
pub struct Ewma {
    alpha: f64,
    mean: f64,
    variance: f64,
    primed: bool,
}

impl Ewma {
    pub fn new(time_constant_s: f64, rate: SampleRate) -> Result<Self, DspError> {
        let time_constant_s = positive("time_constant_s", time_constant_s)?;
        Ok(Self {
            alpha: -(-1.0 / (time_constant_s * rate.hz())).exp_m1(),
            mean: 0.0,
            variance: 0.0,
            primed: false,
        })
    }

    /// Add one sample (West's incremental weighted update, numerically stable).
    #[inline]
    pub fn update(&mut self, x: f64) {
        if !self.primed {
            self.mean = x;
            self.primed = true;
            return;
        }
        let deviation = x - self.mean;
        let increment = self.alpha * deviation;
        self.mean += increment;
        self.variance = (1.0 - self.alpha) * (self.variance + deviation * increment);
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn std_dev(&self) -> f64 {
        self.variance.sqrt()
    }
}

/// Exact mean and standard deviation of every sample seen (Welford's update),
/// for calibration windows.
#[derive(Debug, Clone, Default)]
pub struct Moments {
    count: u64,
    mean: f64,
    sum_sq_dev: f64,
}

impl Moments {
    #[inline]
    pub fn update(&mut self, x: f64) {
        self.count += 1;
        let deviation = x - self.mean;
        self.mean += deviation / self.count as f64;
        self.sum_sq_dev += deviation * (x - self.mean);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Population standard deviation (0 before two samples).
    pub fn std_dev(&self) -> f64 {
        if self.count > 1 {
            (self.sum_sq_dev / self.count as f64).sqrt()
        } else {
            0.0
        }
    }
}

/// Running median and MAD over the last `window_s` seconds, sampled every
/// `update_every` samples.
///
/// Every `update_every`-th sample enters a ring of `window_s · rate /
/// update_every` points and the statistics are recomputed (copy into a
/// preallocated scratch buffer, select the median, then the median absolute
/// deviation). So the cost is O(points) once per `update_every` samples and
/// the amortised cost per sample is O(points / update_every): choose
/// `update_every` so that a window holds a few hundred points, which is plenty
/// for a median and keeps one recompute within a block's latency budget.
/// Before the window has filled, statistics cover the points seen so far;
/// before the first point they are 0.
#[derive(Debug, Clone)]
pub struct RobustBaseline {
    ring: Vec<f64>,
    next: usize,
    filled: usize,
    update_every: usize,
    since_update: usize,
    scratch: Vec<f64>,
    median: f64,
    mad: f64,
}

/// MAD → standard deviation for Gaussian data (1 / Φ⁻¹(3/4)).
const MAD_TO_SD: f64 = 1.4826;

impl RobustBaseline {
    pub fn new(window_s: f64, update_every: usize, rate: SampleRate) -> Result<Self, DspError> {
        let window = window_samples("window_s", window_s, window_s, rate)?;
        if update_every == 0 {
            return Err(DspError::OutOfRange {
                name: "update_every",
                value: 0.0,
                allowed: "at least 1 sample",
            });
        }
        let points = window.div_ceil(update_every);
        Ok(Self {
            ring: vec![0.0; points],
            next: 0,
            filled: 0,
            update_every,
            since_update: 0,
            scratch: vec![0.0; points],
            median: 0.0,
            mad: 0.0,
        })
    }

    /// Add one sample; every `update_every`-th one enters the window and the
    /// statistics are recomputed.
    #[inline]
    pub fn update(&mut self, x: f64) {
        self.since_update += 1;
        if self.since_update == self.update_every {
            self.since_update = 0;
            self.ring[self.next] = x;
            self.next = (self.next + 1) % self.ring.len();
            self.filled = (self.filled + 1).min(self.ring.len());
            self.recompute();
        }
    }

    fn recompute(&mut self) {
        // Until the ring wraps, the points seen are exactly ring[..filled].
        let values = &mut self.scratch[..self.filled];
        values.copy_from_slice(&self.ring[..self.filled]);
        let median = median_in_place(values);
        values.iter_mut().for_each(|v| *v = (*v - median).abs());
        self.mad = median_in_place(values);
        self.median = median;
    }

    pub fn median(&self) -> f64 {
        self.median
    }

    /// Median absolute deviation from the median.
    pub fn mad(&self) -> f64 {
        self.mad
    }

    /// `1.4826 * mad()`: the standard deviation for Gaussian data, robust to outliers.
    pub fn robust_sd(&self) -> f64 {
        MAD_TO_SD * self.mad
    }

    /// True once a whole window of points has been seen.
    pub fn is_warm(&self) -> bool {
        self.filled == self.ring.len()
    }
}

/// The last `capacity` values of a series, for order statistics computed once
/// per new value (O(capacity), into a preallocated scratch buffer).
#[derive(Debug, Clone)]
pub struct RecentValues {
    ring: Vec<f64>,
    next: usize,
    filled: usize,
    scratch: Vec<f64>,
}

impl RecentValues {
    pub fn new(capacity: usize) -> Result<Self, DspError> {
        if capacity == 0 {
            return Err(DspError::OutOfRange {
                name: "capacity",
                value: 0.0,
                allowed: "at least 1",
            });
        }
        Ok(Self {
            ring: vec![0.0; capacity],
            next: 0,
            filled: 0,
            scratch: vec![0.0; capacity],
        })
    }

    pub fn push(&mut self, x: f64) {
        self.ring[self.next] = x;
        self.next = (self.next + 1) % self.ring.len();
        self.filled = (self.filled + 1).min(self.ring.len());
    }

    /// How many values are held (at most the capacity).
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    fn values(&mut self) -> &mut [f64] {
        // Until the ring wraps, the values seen are exactly ring[..filled].
        let values = &mut self.scratch[..self.filled];
        values.copy_from_slice(&self.ring[..self.filled]);
        values
    }

    /// Median of the values held (`None` before the first).
    pub fn median(&mut self) -> Option<f64> {
        (!self.is_empty()).then(|| median_in_place(self.values()))
    }

    /// The `q`-quantile (0–1, nearest rank) of the values held (`None` before the first).
    pub fn quantile(&mut self, q: f64) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        let values = self.values();
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        Some(*values.select_nth_unstable_by(rank - 1, f64::total_cmp).1)
    }
}

/// Median (mean of the two middle values for even lengths, as numpy); reorders `values`.
pub(crate) fn median_in_place(values: &mut [f64]) -> f64 {
    let len = values.len();
    let (lower, &mut upper_middle, _) = values.select_nth_unstable_by(len / 2, f64::total_cmp);
    if len % 2 == 1 {
        upper_middle
    } else {
        let lower_middle = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower_middle + upper_middle) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(hz: f64) -> SampleRate {
        SampleRate::new(hz).unwrap()
    }

    #[test]
    fn recent_values_keep_the_last_ones_for_median_and_quantiles() {
        let mut recent = RecentValues::new(4).unwrap();
        assert_eq!((recent.median(), recent.quantile(0.5)), (None, None));
        for x in [10.0, 1.0, 7.0, 3.0, 5.0] {
            recent.push(x);
        }
        // Holds 1, 7, 3, 5 (10 left the ring).
        assert_eq!(recent.len(), 4);
        assert_eq!(recent.median(), Some(4.0));
        assert_eq!(recent.quantile(0.25), Some(1.0));
        assert_eq!(recent.quantile(0.5), Some(3.0));
        assert_eq!(recent.quantile(1.0), Some(7.0));
        assert_eq!(recent.quantile(0.0), Some(1.0));
        assert!(RecentValues::new(0).is_err());
    }

    #[test]
    fn ewma_rejects_bad_time_constants() {
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = Ewma::new(bad, rate(250.0)).unwrap_err();
            assert!(err.to_string().contains("time_constant_s"), "{err}");
        }
    }

    #[test]
    fn ewma_tracks_mean_and_variance_of_a_square_wave() {
        // ±1 alternating: long-run mean 0, variance 1 (up to the EW weighting bias).
        let mut ewma = Ewma::new(1.0, rate(1000.0)).unwrap();
        for i in 0..20_000 {
            ewma.update(if i % 2 == 0 { 1.0 } else { -1.0 });
        }
        assert!(ewma.mean().abs() < 1e-3, "mean {}", ewma.mean());
        assert!((ewma.std_dev() - 1.0).abs() < 1e-3, "sd {}", ewma.std_dev());
    }

    #[test]
    fn ewma_time_constant_sets_decay() {
        let fs = rate(100.0);
        let mut ewma = Ewma::new(0.5, fs).unwrap();
        ewma.update(0.0);
        for _ in 0..fs.samples_in_s(0.5) {
            ewma.update(1.0);
        }
        // After one time constant a step has risen to 1 - 1/e.
        assert!(
            (ewma.mean() - (1.0 - (-1.0f64).exp())).abs() < 1e-12,
            "{}",
            ewma.mean()
        );
    }

    #[test]
    fn moments_match_direct_mean_and_sd() {
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut moments = Moments::default();
        xs.iter().for_each(|&x| moments.update(x));
        assert_eq!(moments.count(), 8);
        assert_eq!(moments.mean(), 5.0);
        assert!((moments.std_dev() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn baseline_rejects_bad_parameters() {
        assert!(RobustBaseline::new(0.0, 1, rate(250.0)).is_err());
        assert!(RobustBaseline::new(1.0, 0, rate(250.0)).is_err());
        let err = RobustBaseline::new(0.001, 1, rate(250.0)).unwrap_err();
        assert!(err.to_string().contains("window_s = 0.001"), "{err}");
    }

    #[test]
    fn baseline_median_and_mad_match_direct_computation() {
        // Window of 5 samples, every sample enters.
        let mut baseline = RobustBaseline::new(0.5, 1, rate(10.0)).unwrap();
        let xs = [3.0, 100.0, 1.0, 4.0, 1.0, 5.0, 9.0, -2.0];
        for &x in &xs {
            baseline.update(x);
        }
        assert!(baseline.is_warm());
        // Last 5: [4, 1, 5, 9, -2] → median 4; deviations [0, 3, 1, 5, 6] → MAD 3.
        assert_eq!(baseline.median(), 4.0);
        assert_eq!(baseline.mad(), 3.0);
        assert_eq!(baseline.robust_sd(), 1.4826 * 3.0);
        baseline.update(7.0);
        baseline.update(8.0);
        // Last 5: [5, 9, -2, 7, 8] → median 7; deviations [2, 2, 9, 0, 1] → MAD 2.
        assert_eq!((baseline.median(), baseline.mad()), (7.0, 2.0));
    }

    #[test]
    fn baseline_decimates_into_its_window() {
        // 1 s at 10 Hz, every 2nd sample enters: a window of 5 points.
        let mut baseline = RobustBaseline::new(1.0, 2, rate(10.0)).unwrap();
        let xs = [
            0.0, 3.0, 0.0, 100.0, 0.0, 1.0, 0.0, 4.0, 0.0, 1.0, 0.0, 5.0, 0.0, 9.0, 0.0, -2.0,
        ];
        for &x in &xs[..15] {
            baseline.update(x);
        }
        // Entered: 3, 100, 1, 4, 1, 5, 9 → window [1, 4, 1, 5, 9], median 4.
        assert!(baseline.is_warm());
        assert_eq!(baseline.median(), 4.0);
        baseline.update(xs[15]);
        // Window [4, 1, 5, 9, -2] → median 4, MAD 3.
        assert_eq!((baseline.median(), baseline.mad()), (4.0, 3.0));
    }

    #[test]
    fn baseline_even_partial_window_uses_mean_of_middle_values() {
        let mut baseline = RobustBaseline::new(1.0, 1, rate(10.0)).unwrap();
        for x in [1.0, 10.0, 2.0, 4.0] {
            baseline.update(x);
        }
        assert!(!baseline.is_warm());
        assert_eq!(baseline.median(), 3.0);
        // Deviations [2, 7, 1, 1] → MAD 1.5.
        assert_eq!(baseline.mad(), 1.5);
    }
}
