//! Amplitude envelope of a band-passed signal.

use super::{window_samples, DspError};
use crate::time::SampleRate;

/// Causal mean over the last `window_len` samples.
///
/// A running sum over a ring; the sum is re-added from the ring each time the
/// ring wraps, so rounding cannot accumulate (O(1) amortised per sample).
/// Before the window fills, the missing samples count as zeros.
#[derive(Debug, Clone)]
pub struct MovingMean {
    values: Vec<f64>,
    next: usize,
    sum: f64,
}

impl MovingMean {
    pub fn new(window_ms: f64, rate: SampleRate) -> Result<Self, DspError> {
        let window = window_samples("window_ms", window_ms / 1000.0, window_ms, rate)?;
        Ok(Self {
            values: vec![0.0; window],
            next: 0,
            sum: 0.0,
        })
    }

    /// Take one sample, return the mean of the window ending at it.
    #[inline]
    pub fn process(&mut self, x: f64) -> f64 {
        let oldest = std::mem::replace(&mut self.values[self.next], x);
        self.next += 1;
        if self.next == self.values.len() {
            self.next = 0;
            self.sum = self.values.iter().sum();
        } else {
            self.sum += x - oldest;
        }
        self.sum / self.values.len() as f64
    }
}

/// Causal RMS over the last `window_ms` milliseconds: the square root of a
/// [`MovingMean`] of squares.
#[derive(Debug, Clone)]
pub struct Envelope {
    mean_square: MovingMean,
}

impl Envelope {
    pub fn new(window_ms: f64, rate: SampleRate) -> Result<Self, DspError> {
        Ok(Self {
            mean_square: MovingMean::new(window_ms, rate)?,
        })
    }

    /// Take one sample, return the RMS of the window ending at it.
    #[inline]
    pub fn process(&mut self, x: f64) -> f64 {
        // Rounding can leave a tiny negative mean after large values leave the window.
        self.mean_square.process(x * x).max(0.0).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(hz: f64) -> SampleRate {
        SampleRate::new(hz).unwrap()
    }

    #[test]
    fn rejects_bad_windows() {
        for bad in [0.0, -5.0, f64::NAN] {
            assert!(Envelope::new(bad, rate(1000.0)).is_err());
        }
        let err = Envelope::new(1.0, rate(250.0)).unwrap_err();
        assert!(err.to_string().contains("window_ms = 1"), "{err}");
    }

    #[test]
    fn rms_of_a_sine_is_amplitude_over_root_two() {
        let fs = rate(1000.0);
        let mut envelope = Envelope::new(100.0, fs).unwrap();
        let mut last = 0.0;
        for i in 0..1000 {
            let t = fs.seconds(i);
            last = envelope.process(3.0 * (2.0 * std::f64::consts::PI * 50.0 * t).sin());
        }
        // 100 ms holds exactly 5 periods of 50 Hz.
        assert!((last - 3.0 / 2f64.sqrt()).abs() < 1e-12, "{last}");
    }

    #[test]
    fn does_not_drift_after_large_transients() {
        let mut envelope = Envelope::new(10.0, rate(1000.0)).unwrap();
        for _ in 0..100 {
            envelope.process(1e8);
        }
        let mut last = f64::NAN;
        for _ in 0..1_000_003 {
            last = envelope.process(1e-3);
        }
        assert!((last - 1e-3).abs() <= 1e-3 * 1e-12, "{last}");
    }
}
