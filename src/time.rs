//! Time in neuroloop is the sample index: a `u64` counted from the first sample
//! of the session. Seconds, milliseconds and device ticks appear only at the
//! edges (config, file output, device sinks), and every conversion lives here.

use std::fmt;

/// Index of a sample (a frame, across channels) from the start of the session.
pub type SampleIndex = u64;

/// Highest sample rate a recording is read at and a detector runs at. No
/// EEG/LFP acquisition samples faster; a higher value is a corrupt header or
/// a typo, and it would size detector buffers by the gigabyte.
pub const MAX_RATE_HZ: f64 = 1_000_000.0;

/// Most channel-samples a second a session processes (3300 channels at
/// 30 kHz): detector state grows with channels × rate, so a header claiming
/// thousands of channels at a high rate is refused before it sizes anything.
pub const MAX_CHANNEL_SAMPLES_PER_S: f64 = 1e8;

/// A validated sample rate in Hz: finite and strictly positive.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct SampleRate(f64);

/// The rate given was zero, negative, NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("sample rate must be a finite number of Hz greater than 0, got {0}")]
pub struct InvalidSampleRate(pub f64);

impl SampleRate {
    pub fn new(hz: f64) -> Result<Self, InvalidSampleRate> {
        if hz.is_finite() && hz > 0.0 {
            Ok(Self(hz))
        } else {
            Err(InvalidSampleRate(hz))
        }
    }

    pub fn hz(self) -> f64 {
        self.0
    }

    /// Nyquist frequency in Hz.
    pub fn nyquist_hz(self) -> f64 {
        self.0 / 2.0
    }

    /// Seconds from the session start of sample `index`.
    pub fn seconds(self, index: SampleIndex) -> f64 {
        index as f64 / self.0
    }

    /// A duration in seconds as a whole number of samples (rounded to nearest).
    pub fn samples_in_s(self, seconds: f64) -> u64 {
        (seconds * self.0).round().max(0.0) as u64
    }

    /// A duration in milliseconds as a whole number of samples (rounded to nearest).
    pub fn samples_in_ms(self, ms: f64) -> u64 {
        self.samples_in_s(ms / 1000.0)
    }

    /// The sample index at (or just after) time `seconds` from the session start.
    pub fn index_at(self, seconds: f64) -> SampleIndex {
        (seconds * self.0).ceil().max(0.0) as u64
    }
}

impl fmt::Display for SampleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_positive_and_non_finite_rates() {
        for bad in [0.0, -250.0, f64::NAN, f64::INFINITY] {
            assert!(SampleRate::new(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(SampleRate::new(250.0).unwrap().hz(), 250.0);
    }

    #[test]
    fn conversions_round_trip() {
        let rate = SampleRate::new(30_000.0).unwrap();
        assert_eq!(rate.samples_in_ms(1.0), 30);
        assert_eq!(rate.samples_in_s(2.5), 75_000);
        assert_eq!(rate.seconds(75_000), 2.5);
        assert_eq!(rate.index_at(0.5), 15_000);
        assert_eq!(rate.nyquist_hz(), 15_000.0);
    }
}
