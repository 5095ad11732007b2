//! Pure numeric stages: filter design, SOS cascades, envelopes, running statistics.
//!
//! Everything here is causal and sample-indexed; constructors validate their
//! parameters and may allocate, the per-sample and per-block paths never do.

pub mod butterworth;
pub mod denormals;
pub mod envelope;
pub mod phase;
pub mod sos;
pub mod stats;

pub use butterworth::{butterworth, Band, DesignError};
pub use denormals::FlushDenormals;
pub use envelope::{Envelope, MovingMean};
pub use phase::{Echt, HalfWaveDelay, Pll};
pub use sos::{filter_zero_phase, Section, Sos, SosFilter, SosFrameBank};
pub use stats::{Ewma, Moments, RecentValues, RobustBaseline};

use crate::time::SampleRate;

/// A DSP stage was given parameters (usually from a config) it cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DspError {
    #[error("{name} = {value} is out of range; allowed: {allowed}")]
    OutOfRange {
        name: &'static str,
        value: f64,
        allowed: &'static str,
    },
    #[error(
        "{name} = {value} is shorter than one sample at {rate}; allowed: at least {min_value}"
    )]
    WindowTooShort {
        name: &'static str,
        value: f64,
        rate: SampleRate,
        min_value: f64,
    },
    #[error("SOS section {section}: {problem}")]
    InvalidSos {
        section: usize,
        problem: &'static str,
    },
    #[error("a filter bank needs at least one channel")]
    NoChannels,
}

/// A strictly positive, finite parameter.
fn positive(name: &'static str, value: f64) -> Result<f64, DspError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(DspError::OutOfRange {
            name,
            value,
            allowed: "a finite number greater than 0",
        })
    }
}

/// A window length in samples (at least one) from a duration in seconds.
fn window_samples(
    name: &'static str,
    seconds: f64,
    value: f64,
    rate: SampleRate,
) -> Result<usize, DspError> {
    positive(name, value)?;
    let samples = rate.samples_in_s(seconds);
    if samples == 0 {
        return Err(DspError::WindowTooShort {
            name,
            value,
            rate,
            min_value: value / seconds * 0.5 / rate.hz(),
        });
    }
    usize::try_from(samples).map_err(|_| DspError::OutOfRange {
        name,
        value,
        allowed: "a window that fits in memory",
    })
}
